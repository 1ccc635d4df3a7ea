import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { InternalError } from "../errors.js";

/**
 * Encrypts small secrets (webhook tokens, passwords, signing secrets) for storage with
 * AES-256-GCM: a fresh 96-bit nonce per value, the tag authenticates it. The format carries a
 * version so the key or algorithm can change later: "v1:<nonce>:<tag>:<ciphertext>" (base64url).
 */
export interface SecretBox {
  seal(plaintext: string): Promise<string>;
  open(sealed: string): Promise<string>;
}

export const ENCRYPTION_KEY_BYTES = 32;

export class SecretBoxError extends InternalError {
  override name = "SecretBoxError";
}

export function sealWithKey(key: Buffer, plaintext: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return ["v1", nonce, cipher.getAuthTag(), ciphertext]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(":");
}

export function openWithKey(key: Buffer, sealed: string): string {
  const parts = sealed.split(":");
  if (parts.length !== 4 || parts[0] !== "v1") throw new SecretBoxError("not a sealed secret (v1)");
  const [nonce, tag, ciphertext] = parts.slice(1).map((p) => Buffer.from(p, "base64url")) as [
    Buffer,
    Buffer,
    Buffer,
  ];
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString("utf8");
  } catch {
    throw new SecretBoxError("sealed secret does not open with this key (wrong key or tampered value)");
  }
}

/** A SecretBox over a key that is fetched once, on first use (a file, an env var, Secrets Manager). */
export function secretBox(loadKey: () => Promise<Buffer>): SecretBox {
  let key: Promise<Buffer> | undefined;
  const getKey = () => {
    key ??= loadKey().then((k) => {
      if (k.length !== ENCRYPTION_KEY_BYTES) {
        throw new SecretBoxError(`encryption key must be ${ENCRYPTION_KEY_BYTES} bytes, got ${k.length}`);
      }
      return k;
    });
    // A failed load is retried on the next use instead of being cached forever.
    key.catch(() => {
      key = undefined;
    });
    return key;
  };
  return {
    seal: async (plaintext) => sealWithKey(await getKey(), plaintext),
    open: async (sealed) => openWithKey(await getKey(), sealed),
  };
}

/** Reads a key given as 64 hex characters or as base64 of 32 bytes. */
export function parseEncryptionKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : Buffer.from(trimmed, "base64");
  if (key.length !== ENCRYPTION_KEY_BYTES) {
    throw new SecretBoxError(
      `${source}: the encryption key must be 32 bytes, as 64 hex characters or base64 (e.g. openssl rand -base64 32)`,
    );
  }
  return key;
}
