import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { registerFirstAdminKey } from "../../functions/handlers/migrate.js";
import { withTestApp } from "../helpers/test-app.js";

const t = withTestApp();

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tme-first-admin-key-AbCdEf";

describe("the stack's first admin key", () => {
  it("is registered by migrate from its secret, works as an admin key, and stays revoked once revoked", async () => {
    const client = new SecretsManagerClient({ region: "eu-west-1" });
    const secrets = mockClient(client);
    const key = "FirstAdminKeyFromSecretsManager0123456789abcdef";
    secrets.on(GetSecretValueCommand, { SecretId: ARN }).resolves({ SecretString: key });

    expect(await registerFirstAdminKey(t.database.url, ARN, client)).toBe("created");
    expect(await registerFirstAdminKey(t.database.url, ARN, client)).toBe("exists");
    const created = await t.request("POST", "/keys", { key, body: { name: "mine", scopes: ["admin"] } });
    expect(created.status).toBe(201);

    const first = await t.app.db.rows<{ id: string; name: string }>(
      "SELECT id, name FROM api_keys WHERE bootstrap AND revoked_at IS NULL",
    );
    expect(first).toEqual([{ id: expect.any(String), name: "first admin key (stack secret)" }]);
    expect((await t.request("DELETE", `/keys/${first[0]!.id}`, { key: created.body.key })).status).toBe(204);
    // A redeploy runs migrate again: the revoked key is not brought back.
    expect(await registerFirstAdminKey(t.database.url, ARN, client)).toBe("revoked");
    expect((await t.request("GET", "/tasks", { key })).status).toBe(401);
  });
});
