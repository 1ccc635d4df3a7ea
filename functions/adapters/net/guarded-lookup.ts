import dns, { type LookupAddress, type LookupOptions } from "node:dns";
import type { LookupFunction } from "node:net";
import { InternalError } from "../../core/errors.js";
import { isForbiddenAddress } from "../../core/net/address-policy.js";

/** Its code is what the http plugin recognises once the HTTP client has passed it on. */
export class ForbiddenAddressError extends InternalError {
  override name = "ForbiddenAddressError";
  constructor(message: string) {
    super(message, { code: "ERR_TME_FORBIDDEN_ADDRESS" });
  }
}

type Callback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http.request / net.connect that resolves the host and refuses to connect when
 * any address it resolved to is private, loopback, link-local or reserved. Checked at connect
 * time, on the very addresses the socket will use, so a DNS answer that changes between the
 * URL check and the request (rebinding) cannot smuggle a request inside.
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  const lookup = (hostname: string, options: LookupOptions, callback: Callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, options.all ? [] : "", undefined);
      const list = addresses as LookupAddress[];
      const forbidden = allowPrivate ? undefined : list.find((a) => isForbiddenAddress(a.address));
      if (forbidden) {
        return callback(
          new ForbiddenAddressError(
            `refusing to connect to ${hostname} (${forbidden.address}): a private, loopback, link-local or reserved address`,
          ),
          options.all ? [] : "",
          undefined,
        );
      }
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "");
      callback(null, first.address, first.family);
    });
  };
  return lookup as unknown as LookupFunction;
}
