import { describe, expect, it } from "vitest";
import { assertPublicUrl, isForbiddenAddress } from "../../functions/core/net/address-policy.js";

// Finding 10: http://[::127.0.0.1]/ (IPv4-compatible IPv6) was accepted as a callback URL. The
// WHATWG parser writes that host as [::7f00:1], which ipaddr.js calls plain unicast.
const refusedUrls = [
  "http://[::127.0.0.1]/", // IPv4-compatible (::/96), loopback inside
  "http://[::7f00:1]/", // the same, as the URL parser normalises it
  "http://[::a9fe:a9fe]/", // ::169.254.169.254, the metadata address
  "http://[::8.8.8.8]/", // ::/96 is deprecated: refused even around a public IPv4
  "http://[::ffff:127.0.0.1]/", // IPv4-mapped
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:0:127.0.0.1]/", // SIIT (::ffff:0:0:0/96)
  "http://[2002:7f00:1::1]/", // 6to4 around 127.0.0.1
  "http://[2002:a9fe:a9fe::]/", // 6to4 around 169.254.169.254
  "http://[2002:808:808::1]/", // 6to4 around a public IPv4: still a tunnel TME cannot judge
  "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", // Teredo
  "http://[64:ff9b::127.0.0.1]/", // NAT64 around loopback
  "http://[64:ff9b::a9fe:a9fe]/", // NAT64 around the metadata address
  "http://[64:ff9b:1::a00:1]/", // local-use NAT64 (RFC 8215)
  "http://[::]/",
  "http://[::1]/",
];

describe("SSRF: IPv4 hidden in IPv6", () => {
  it.each(refusedUrls)("refuses %s as a callback URL (422 naming the field)", async (url) => {
    await expect(assertPublicUrl(url, { allowPrivate: false, field: "callback_url" })).rejects.toMatchObject({
      status: 422,
      details: [{ path: "callback_url" }],
    });
  });

  it("judges each embedded form at the socket too (the connect-time guard uses the same rule)", () => {
    for (const ip of ["::7f00:1", "::127.0.0.1", "::ffff:0:7f00:1", "2002:7f00:1::1", "64:ff9b::7f00:1"]) {
      expect(isForbiddenAddress(ip), ip).toBe(true);
    }
  });

  it("still accepts public IPv6 and NAT64 around a public IPv4", async () => {
    for (const url of [
      "http://[2606:4700:4700::1111]/",
      "http://[64:ff9b::8.8.8.8]/",
      "http://93.184.216.34/",
    ]) {
      await expect(assertPublicUrl(url, { allowPrivate: false })).resolves.toMatchObject({
        url: new URL(url),
      });
    }
  });
});
