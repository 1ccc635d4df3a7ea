import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { Unprocessable } from "../errors.js";

/**
 * The SSRF guard: which addresses TME may call on a user's behalf (webhooks, the http plugin).
 * Only globally routed unicast is allowed; everything else (private, loopback, link-local and
 * the cloud metadata address 169.254.169.254, CGNAT 100.64/10, multicast, broadcast,
 * unspecified, reserved, documentation, and IPv6 forms that embed an IPv4 address such as
 * IPv4-mapped ::ffff:a.b.c.d, NAT64 and 6to4) is forbidden, because the embedded address
 * could be any of the former.
 */
export function isForbiddenAddress(ip: string): boolean {
  const literal = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  // Zone ids (fe80::1%eth0) only ever appear on link-local addresses.
  if (literal.includes("%")) return true;
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // ipaddr.parse also reads the legacy IPv4 spellings (2130706433, 0x7f000001, 0177.0.0.1),
    // which is what the OS resolver would connect to.
    address = ipaddr.parse(literal);
  } catch {
    // Not an address at all: refuse rather than guess.
    return true;
  }
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return isForbiddenAddress((address as ipaddr.IPv6).toIPv4Address().toString());
  }
  return address.range() !== "unicast";
}

/** One resolved address, as node:dns lookup({all: true}) gives it. */
export interface ResolvedAddress {
  address: string;
  family: number;
}
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** 422 naming the field; raised before any connection is opened. */
export class ForbiddenCallbackUrl extends Unprocessable {
  constructor(message: string, path = "callback_url") {
    super(message, [{ path, message }]);
  }
}

export interface PublicUrlOptions {
  /** allow_private_callbacks: skip the address checks (the scheme is still checked). */
  allowPrivate: boolean;
  /** Injected in tests; the system resolver otherwise. */
  resolve?: Resolver;
  /** Field named in the error details. */
  path?: string;
}

/**
 * Checks a URL before it is stored or called: http(s) only, no credentials in it, and unless
 * allowPrivate, a host whose every resolved address is public. The WHATWG URL parser has already
 * normalised decimal, hex and octal IPv4 hosts to dotted form, so "http://2130706433/" is seen
 * as 127.0.0.1 here. Callers that then connect must check again at connect time (DNS can change
 * between this check and the connection: rebinding).
 */
export async function assertPublicUrl(
  input: string | URL,
  options: PublicUrlOptions,
): Promise<{ url: URL; addresses: string[] }> {
  const path = options.path ?? "callback_url";
  let url: URL;
  try {
    url = typeof input === "string" ? new URL(input) : input;
  } catch {
    throw new ForbiddenCallbackUrl("not a valid absolute URL", path);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ForbiddenCallbackUrl(
      `scheme ${url.protocol.replace(":", "")} is not allowed; use http or https`,
      path,
    );
  }
  if (url.username || url.password) {
    throw new ForbiddenCallbackUrl("credentials in the URL are not allowed; use the auth settings", path);
  }
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  if (options.allowPrivate) return { url, addresses: [] };
  if (ipaddr.isValid(host)) {
    if (isForbiddenAddress(host)) {
      throw new ForbiddenCallbackUrl(`${host} is a private, loopback, link-local or reserved address`, path);
    }
    return { url, addresses: [host] };
  }
  let resolved: ResolvedAddress[];
  try {
    resolved = await (options.resolve ?? systemResolver)(host);
  } catch (error) {
    throw new ForbiddenCallbackUrl(
      `host ${host} cannot be resolved (${(error as NodeJS.ErrnoException).code ?? "error"})`,
      path,
    );
  }
  if (resolved.length === 0) throw new ForbiddenCallbackUrl(`host ${host} has no addresses`, path);
  const forbidden = resolved.find((r) => isForbiddenAddress(r.address));
  if (forbidden) {
    throw new ForbiddenCallbackUrl(
      `host ${host} resolves to ${forbidden.address}, a private, loopback, link-local or reserved address`,
      path,
    );
  }
  return { url, addresses: resolved.map((r) => r.address) };
}
