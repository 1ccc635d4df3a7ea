import type { AppConfig } from "../../config/schema.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { NotFound, Unprocessable, ValidationFailed } from "../errors.js";
import { newId } from "../ids.js";
import { assertPublicUrl } from "../net/address-policy.js";
import type { Keyset, KeysetPage } from "../paging.js";
import type { EndpointAuth } from "./deliver.js";
import { generateSigningSecret } from "./signing.js";
import type { EventPattern, SubscriptionFilter } from "./subscription.js";
import type {
  AuthColumns,
  Subscription,
  SubscriptionChanges,
  SubscriptionStore,
} from "./subscription-store.js";

/** What the subscription use cases need (an AppContext has it all). */
export interface SubscriptionServices {
  subscriptions: SubscriptionStore;
  secrets: SecretBox;
  config: { app: AppConfig };
  now: () => Date;
}

/** How TME authenticates to an endpoint, as a caller sends it. */
export type AuthInput =
  | { type: "none" }
  | { type: "bearer"; token: string }
  | { type: "basic"; username: string; password: string }
  | { type: "hmac" };

/** Sealed credentials of a subscription: what auth_secret holds, as JSON, per auth type. */
export interface SealedAuth {
  token?: string;
  password?: string;
  secret?: string;
}

interface SealedAuthColumns {
  auth_type: Subscription["auth_type"];
  auth_username: string | null;
  auth_secret: string | null;
  /** hmac: the new secret, shown once in the response. */
  signingSecret?: string;
}

/** Seals an auth input; for hmac a new secret is generated and returned (shown once). */
async function sealAuth(secrets: SecretBox, auth: AuthInput): Promise<SealedAuthColumns> {
  const seal = (value: SealedAuth) => secrets.seal(JSON.stringify(value));
  switch (auth.type) {
    case "bearer":
      return { auth_type: "bearer", auth_username: null, auth_secret: await seal({ token: auth.token }) };
    case "basic":
      return {
        auth_type: "basic",
        auth_username: auth.username,
        auth_secret: await seal({ password: auth.password }),
      };
    case "hmac": {
      const signingSecret = generateSigningSecret();
      return {
        auth_type: "hmac",
        auth_username: null,
        auth_secret: await seal({ secret: signingSecret }),
        signingSecret,
      };
    }
    default:
      return { auth_type: "none", auth_username: null, auth_secret: null };
  }
}

/** The credentials an attempt sends: the sealed ones opened, plus an unexpired previous hmac secret. */
export async function openAuth(
  secrets: SecretBox,
  row: Pick<Subscription, AuthColumns>,
  now: Date,
): Promise<EndpointAuth> {
  const sealed: SealedAuth = row.auth_secret ? JSON.parse(await secrets.open(row.auth_secret)) : {};
  switch (row.auth_type) {
    case "bearer":
      return { type: "bearer", token: sealed.token };
    case "basic":
      return { type: "basic", username: row.auth_username ?? "", password: sealed.password ?? "" };
    case "hmac": {
      const signingSecrets = sealed.secret ? [sealed.secret] : [];
      if (row.previous_secret && row.previous_secret_expires_at && row.previous_secret_expires_at > now) {
        const previous = JSON.parse(await secrets.open(row.previous_secret)) as SealedAuth;
        if (previous.secret) signingSecrets.push(previous.secret);
      }
      return { type: "hmac", signingSecrets };
    }
    default:
      return { type: "none" };
  }
}

async function checkCallbackUrl(app: SubscriptionServices, url: string): Promise<void> {
  await assertPublicUrl(url, { allowPrivate: app.config.app.allow_private_callbacks, field: "callback_url" });
}

/** A subscription of the namespace, or 404. */
export async function findSubscription(
  app: Pick<SubscriptionServices, "subscriptions">,
  namespace: string,
  id: string,
): Promise<Subscription> {
  const row = await app.subscriptions.get(namespace, id);
  if (!row) throw new NotFound("subscription", id);
  return row;
}

export function listSubscriptions(
  app: Pick<SubscriptionServices, "subscriptions">,
  namespace: string,
  page: { limit: number; after?: Keyset },
): Promise<KeysetPage<Subscription>> {
  return app.subscriptions.list(namespace, page);
}

export interface CreateSubscriptionInput {
  event_types: EventPattern[];
  callback_url: string;
  format?: "json" | "xml";
  auth?: AuthInput;
  filter?: SubscriptionFilter;
  enabled?: boolean;
}

/** Subscribes a callback URL; the hmac signing secret, if any, is returned once. */
export async function createSubscription(
  app: SubscriptionServices,
  namespace: string,
  input: CreateSubscriptionInput,
): Promise<{ subscription: Subscription; signingSecret?: string }> {
  await checkCallbackUrl(app, input.callback_url);
  const sealed = await sealAuth(app.secrets, input.auth ?? { type: "none" });
  const subscription = await app.subscriptions.insert({
    id: newId("sub"),
    namespace,
    event_types: [...new Set(input.event_types)],
    callback_url: input.callback_url,
    format: input.format ?? app.config.app.event_notification_format,
    auth_type: sealed.auth_type,
    auth_username: sealed.auth_username,
    auth_secret: sealed.auth_secret,
    filter: input.filter ?? {},
    enabled: input.enabled ?? true,
  });
  return { subscription, signingSecret: sealed.signingSecret };
}

export interface UpdateSubscriptionInput extends Partial<CreateSubscriptionInput> {
  rotate_secret?: true;
}

/**
 * Changes a subscription: fields, auth, a signing-secret rotation (the old secret keeps signing
 * for the grace period), or its enabled state (re-enabling clears what disabled it).
 */
export async function updateSubscription(
  app: SubscriptionServices,
  namespace: string,
  id: string,
  input: UpdateSubscriptionInput,
): Promise<{ subscription: Subscription; signingSecret?: string }> {
  if (Object.keys(input).length === 0) {
    throw new ValidationFailed("nothing to change: send at least one field", [
      { path: "(body)", message: "empty" },
    ]);
  }
  if (input.callback_url !== undefined) await checkCallbackUrl(app, input.callback_url);
  let signingSecret: string | undefined;
  const subscription = await app.subscriptions.modify(namespace, id, async (current) => {
    const changes: SubscriptionChanges = {
      event_types: input.event_types ? [...new Set(input.event_types)] : undefined,
      callback_url: input.callback_url,
      format: input.format,
      filter: input.filter,
    };
    if (input.auth && input.rotate_secret) {
      throw new ValidationFailed("send either auth or rotate_secret, not both", [
        { path: "rotate_secret", message: "cannot be combined with auth" },
      ]);
    }
    if (input.auth) {
      const sealed = await sealAuth(app.secrets, input.auth);
      Object.assign(changes, {
        auth_type: sealed.auth_type,
        auth_username: sealed.auth_username,
        auth_secret: sealed.auth_secret,
      });
      signingSecret = sealed.signingSecret;
    }
    if (input.rotate_secret) {
      if (current.auth_type !== "hmac") {
        throw new Unprocessable("only hmac subscriptions have a signing secret to rotate", [
          { path: "rotate_secret", message: `auth.type is ${current.auth_type}` },
        ]);
      }
      signingSecret = generateSigningSecret();
      const graceMs = app.config.app.webhooks.secret_rotation_grace_hours * 3_600_000;
      changes.auth_secret = await app.secrets.seal(
        JSON.stringify({ secret: signingSecret } satisfies SealedAuth),
      );
      changes.previous_secret = current.auth_secret;
      changes.previous_secret_expires_at = new Date(app.now().getTime() + graceMs);
    }
    if (input.enabled === true && !current.enabled) {
      Object.assign(changes, {
        enabled: true,
        disabled_cause: null,
        disabled_reason: null,
        disabled_at: null,
        failing_since: null,
      });
    } else if (input.enabled === false && current.enabled) {
      Object.assign(changes, {
        enabled: false,
        disabled_cause: "manual",
        disabled_reason: "disabled by request",
        disabled_at: app.now(),
      });
    }
    return changes;
  });
  if (!subscription) throw new NotFound("subscription", id);
  return { subscription, signingSecret };
}

/** Deletes a subscription (its pending attempts end), or 404. */
export async function deleteSubscription(
  app: Pick<SubscriptionServices, "subscriptions">,
  namespace: string,
  id: string,
): Promise<void> {
  if (!(await app.subscriptions.delete(namespace, id))) throw new NotFound("subscription", id);
}
