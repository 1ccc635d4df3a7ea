import { describe, expect, it } from "vitest";
import { proxyNameFor } from "../../infra/constructs/network-and-database.js";

describe("proxyNameFor", () => {
  it("derives a valid RDS Proxy name from any stack name, distinct per stack", () => {
    expect(proxyNameFor("Tme")).toBe("Tme-proxy");
    expect(proxyNameFor("tme-staging")).toBe("tme-staging-proxy");
    expect(proxyNameFor("1st--stack_x")).toBe("st-stack-x-proxy");
    const long = proxyNameFor(`a${"b".repeat(100)}`);
    expect(long.length).toBeLessThanOrEqual(60);
    for (const name of [long, proxyNameFor("x-".repeat(40)), proxyNameFor("999")]) {
      expect(name).toMatch(/^[A-Za-z](?:[A-Za-z0-9]|-(?!-))*[A-Za-z0-9]$/);
      expect(name.length).toBeLessThanOrEqual(60);
    }
  });
});
