import ipaddr from "ipaddr.js";
import { Unprocessable } from "../errors.js";

/**
 * Where TME may send requests on a caller's behalf (webhooks, the http plugin). Only public
 * unicast addresses: never loopback, private, link-local (169.254.169.254, the cloud metadata
 * service), carrier-grade NAT, multicast, reserved or documentation ranges, in IPv4 or IPv6,
 * including IPv4 hidden inside IPv6 (::ffff:127.0.0.1, NAT64 64:ff9b::/96, 6to4, Teredo).
 */
export function isForbiddenAddress(ip: string): boolean {
  const parsed = parseAddress(ip);
  if (!parsed) return true;
  return !isPublic(parsed);
}

function parseAddress(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const text = ip.trim().replace(/^\[(.*)\]$/, "$1");
  // Zone ids ("fe80::1%eth0") name an interface: link-local by definition.
  if (text.includes("%")) return ipaddr.parse("fe80::1");
  try {
    // ipaddr.parse accepts the forms URL parsers and resolvers accept too: "127.1",
    // "2130706433", "0x7f.0.0.1", "0177.0.0.1". What the socket would connect to is what we check.
    return ipaddr.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * IPv6 ranges that carry an IPv4 address inside them, or tunnel to one, and are refused
 * outright: IPv4-compatible (::/96, deprecated by RFC 4291; the WHATWG parser turns
 * "[::127.0.0.1]" into "::7f00:1", which ipaddr.js calls plain unicast), 6to4 (2002::/16),
 * Teredo (2001::/32), the local-use NAT64 prefix (64:ff9b:1::/48) and SIIT (::ffff:0:0:0/96).
 * A webhook has no business on any of them, and each can reach an IPv4 network TME cannot judge.
 */
const TUNNELLED_IPV6: Array<[ipaddr.IPv6, number]> = [
  ["::", 96],
  ["2002::", 16],
  ["2001::", 32],
  ["64:ff9b:1::", 48],
  ["::ffff:0:0:0", 96],
].map(([text, bits]) => [ipaddr.IPv6.parse(text as string), bits as number]);

function isPublic(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  if (address.kind() === "ipv4") return address.range() === "unicast";
  const v6 = address as ipaddr.IPv6;
  const range = v6.range();
  // IPv4-mapped (::ffff:a.b.c.d) is how dual-stack sockets write an IPv4 peer: judge the IPv4.
  if (range === "ipv4Mapped") return isPublic(v6.toIPv4Address());
  if (TUNNELLED_IPV6.some(([prefix, bits]) => v6.match(prefix, bits))) return false;
  if (range === "rfc6052") {
    // Well-known NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits: judge that.
    const parts = v6.parts;
    const embedded = new ipaddr.IPv4([parts[6]! >> 8, parts[6]! & 255, parts[7]! >> 8, parts[7]! & 255]);
    return isPublic(embedded);
  }
  return range === "unicast";
}

/** The schemes TME calls out with. */
const CALLABLE_SCHEMES = new Set(["http:", "https:"]);

/**
 * The first URL rule of every outgoing call (webhooks, the http plugin, a callback_url at its
 * create): an absolute http or https URL. `host` is the hostname as the socket sees it (IPv6
 * brackets off); the WHATWG parser has already turned decimal, hex and octal IPv4 into dotted
 * form. Each caller words its own refusal.
 */
export function callableUrl(
  input: string | URL,
):
  | { ok: true; url: URL; host: string }
  | { ok: false; refused: "invalid" }
  | { ok: false; refused: "scheme"; scheme: string } {
  let url: URL;
  try {
    url = typeof input === "string" ? new URL(input) : input;
  } catch {
    return { ok: false, refused: "invalid" };
  }
  if (!CALLABLE_SCHEMES.has(url.protocol)) return { ok: false, refused: "scheme", scheme: url.protocol };
  return { ok: true, url, host: url.hostname.replace(/^\[(.*)\]$/, "$1") };
}

/** An IP literal TME refuses to call. Literals never reach the resolver, so they are judged here. */
export function isForbiddenLiteral(host: string): boolean {
  return ipaddr.isValid(host) && isForbiddenAddress(host);
}

export interface UrlPolicy {
  /** allow_private_callbacks: trust private and loopback targets (development, internal networks). */
  allowPrivate: boolean;
  /** The request field named in the 422 (default "url"). */
  field?: string;
  /** Name resolution; default the system resolver. Injected in tests. */
  resolve?: (hostname: string) => Promise<string[]>;
}

/** A URL TME refuses to call: 422 naming the field. */
export class ForbiddenUrl extends Unprocessable {
  constructor(field: string, message: string) {
    super(message, [{ path: field, message }]);
  }
}

async function systemResolve(hostname: string): Promise<string[]> {
  const { lookup } = await import("node:dns/promises");
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => a.address);
}

/**
 * Checks a URL before TME stores or calls it: http or https, no credentials in it, and (unless
 * allowPrivate) every address its host resolves to is public. The WHATWG URL parser has already
 * turned decimal, hex and octal IPv4 hosts into dotted form, so "http://2130706433/" is judged
 * as 127.0.0.1, without asking DNS. This early check gives a clear 422; the connection itself
 * checks again at connect time (guardedLookup), because DNS may answer differently a second
 * later (rebinding).
 */
export async function assertPublicUrl(
  input: string | URL,
  policy: UrlPolicy,
): Promise<{ url: URL; addresses: string[] }> {
  const field = policy.field ?? "url";
  const target = callableUrl(input);
  if (!target.ok) {
    throw new ForbiddenUrl(
      field,
      target.refused === "invalid"
        ? "must be an absolute http:// or https:// URL"
        : `scheme ${target.scheme.replace(":", "")} is not allowed; use http or https`,
    );
  }
  const { url, host } = target;
  if (url.username || url.password) {
    throw new ForbiddenUrl(field, "must not carry credentials; use the auth settings instead");
  }
  if (policy.allowPrivate) return { url, addresses: [] };
  let addresses: string[];
  if (ipaddr.isValid(host)) {
    addresses = [host];
  } else {
    try {
      addresses = await (policy.resolve ?? systemResolve)(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ForbiddenUrl(field, `host ${host} does not resolve${code ? ` (${code})` : ""}`);
    }
    if (addresses.length === 0) throw new ForbiddenUrl(field, `host ${host} does not resolve`);
  }
  const forbidden = addresses.find(isForbiddenAddress);
  if (forbidden !== undefined) {
    throw new ForbiddenUrl(
      field,
      `${host} resolves to ${forbidden}, a private, loopback, link-local or reserved address (set allow_private_callbacks to allow)`,
    );
  }
  return { url, addresses };
}
