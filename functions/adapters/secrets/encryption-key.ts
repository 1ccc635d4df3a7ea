import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ENCRYPTION_KEY_BYTES, parseEncryptionKey } from "../../core/crypto/secret-box.js";

type Env = Record<string, string | undefined>;

/**
 * The local runtime's key: TME_ENCRYPTION_KEY if set, else TME_DATA_DIR/encryption-key,
 * generated on first use with mode 600. Creating it with O_EXCL makes two processes that
 * start at once agree on one key: the loser reads the winner's file.
 */
export async function localEncryptionKey(dataDir: string, env: Env = process.env): Promise<Buffer> {
  if (env.TME_ENCRYPTION_KEY) return parseEncryptionKey(env.TME_ENCRYPTION_KEY, "TME_ENCRYPTION_KEY");
  const file = path.join(dataDir, "encryption-key");
  try {
    return parseEncryptionKey(readFileSync(file, "utf8"), file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${randomBytes(ENCRYPTION_KEY_BYTES).toString("base64")}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return parseEncryptionKey(readFileSync(file, "utf8"), file);
}
