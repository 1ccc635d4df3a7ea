import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppConfigSchema } from "../../functions/config/schema.js";
import { assertPublicUrl, isForbiddenAddress } from "../../functions/core/net/address-policy.js";
import { OutputTail, storableText } from "../../functions/core/plugins/output-tail.js";
import { retryDelayMs } from "../../functions/core/tasks/retry-policy.js";
import { commandArgv, scrubbedEnvironment } from "../../plugins/shell.js";

const retry = { base_delay_seconds: 2, max_delay_seconds: 600 };

describe("retryDelayMs", () => {
  it("doubles the ceiling per attempt up to the maximum, with full jitter", () => {
    expect([1, 2, 3, 4].map((a) => retryDelayMs(a, retry, () => 0.999999))).toEqual([
      1999, 3999, 7999, 15999,
    ]);
    expect(retryDelayMs(20, retry, () => 0.5)).toBe(300_000);
    expect(retryDelayMs(3, retry, () => 0)).toBe(0);
  });

  it("stays within [0, min(max, base * 2^(n-1))) for any attempt and random value", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 0.9999999, noNaN: true }),
        (attempt, r) => {
          const delay = retryDelayMs(attempt, retry, () => r);
          const ceiling = Math.min(600, 2 * 2 ** (attempt - 1)) * 1000;
          return delay >= 0 && delay < ceiling;
        },
      ),
    );
  });
});

describe("OutputTail", () => {
  it("keeps small output whole", () => {
    const tail = new OutputTail(100);
    tail.push(Buffer.from("hello\n"));
    expect(tail.text()).toEqual({ text: "hello\n", truncated: false });
  });

  it("never exceeds the cap and counts every byte it dropped", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: "binary", maxLength: 300 }), { maxLength: 40 }),
        fc.integer({ min: 64, max: 512 }),
        (chunks, cap) => {
          const tail = new OutputTail(cap);
          let total = 0;
          for (const c of chunks) {
            const b = Buffer.from(c);
            total += b.length;
            tail.push(b);
          }
          const { text, truncated } = tail.text();
          expect(Buffer.byteLength(text)).toBeLessThanOrEqual(cap);
          if (!truncated) return total <= cap;
          const match = /^\[output truncated: (\d+) bytes dropped\]\n/.exec(text);
          if (!match) return false;
          const kept = Buffer.byteLength(text.slice(match[0].length));
          return Number(match[1]) + kept === total;
        },
      ),
    );
  });

  it("storableText removes NUL and cuts at a byte budget without splitting a character", () => {
    expect(storableText("a\u0000b", 10)).toBe("a\uFFFDb");
    expect(storableText("ééé", 5)).toBe("éé");
  });
});

describe("address policy", () => {
  it.each([
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.100.100.200",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "fd00:ec2::254",
    "fe80::1",
    "fe80::1%eth0",
    "[::1]",
    "not-an-ip",
  ])("forbids %s", (ip) => {
    expect(isForbiddenAddress(ip)).toBe(true);
  });

  it.each(["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])(
    "allows %s",
    (ip) => {
      expect(isForbiddenAddress(ip)).toBe(false);
    },
  );

  it("assertPublicUrl refuses private hosts, literal or resolved, naming the field", async () => {
    const resolve = async (host: string) =>
      host === "public.example" ? ["93.184.216.34"] : ["10.0.0.5", "93.184.216.34"];
    await expect(
      assertPublicUrl("https://public.example/hook", { allowPrivate: false, resolve }),
    ).resolves.toMatchObject({ addresses: ["93.184.216.34"] });
    await expect(
      assertPublicUrl("https://mixed.example/hook", { allowPrivate: false, resolve, field: "callback_url" }),
    ).rejects.toMatchObject({ status: 422, details: [{ path: "callback_url" }] });
    await expect(
      assertPublicUrl("http://0x7f.1:8080/", { allowPrivate: false, resolve }),
    ).rejects.toMatchObject({
      status: 422,
    });
    await expect(
      assertPublicUrl("http://[::ffff:a9fe:a9fe]/", { allowPrivate: false, resolve }),
    ).rejects.toMatchObject({
      status: 422,
    });
    await expect(assertPublicUrl("file:///etc/passwd", { allowPrivate: true })).rejects.toMatchObject({
      status: 422,
    });
    await expect(assertPublicUrl("http://127.0.0.1:9/", { allowPrivate: true })).resolves.toMatchObject({
      addresses: [],
    });
  });
});

describe("shell argv and environment", () => {
  const shell = {
    ...AppConfigSchema.parse({}).shell,
    allow_shell: false,
    allowed_commands: ["*"],
    env_allowlist: ["PATH"],
    output_tail_bytes: 65536,
  };

  it("splits like a shell but keeps metacharacters as arguments", () => {
    expect(commandArgv(`echo "; id" 'a b' $HOME`, shell)).toEqual(["echo", "; id", "a b", "$HOME"]);
    expect(commandArgv("echo one", { ...shell, allow_shell: true })).toEqual(["/bin/sh", "-c", "echo one"]);
  });

  it("refuses unbalanced quotes and programs outside the allowlist", () => {
    expect(() => commandArgv(`echo "open`, shell)).toThrow(/cannot be parsed/);
    expect(() =>
      commandArgv("/opt/jobs/../../bin/sh -c id", { ...shell, allowed_commands: ["/opt/jobs/*"] }),
    ).toThrow(/allowed_commands/);
    expect(commandArgv("/opt/jobs/run.sh --all", { ...shell, allowed_commands: ["/opt/jobs/*"] })).toEqual([
      "/opt/jobs/run.sh",
      "--all",
    ]);
  });

  it("lets a pattern cross newlines inside arguments, but not a newline of a /bin/sh script", () => {
    const multiLine = "python3 -c 'import os\nprint(os.getpid())'";
    expect(commandArgv(multiLine, shell)).toEqual(["python3", "-c", "import os\nprint(os.getpid())"]);
    expect(commandArgv("echo 'a\u2028b'", shell)).toEqual(["echo", "a\u2028b"]);
    const jobs = { ...shell, allowed_commands: ["/opt/jobs/*"] };
    expect(commandArgv("/opt/jobs/run.sh 'line one\nline two'", jobs)).toEqual([
      "/opt/jobs/run.sh",
      "line one\nline two",
    ]);
    expect(() => commandArgv("/opt/jobs/run.sh\nrm -rf /tmp/x", { ...jobs, allow_shell: true })).toThrow(
      /allowed_commands/,
    );
  });

  it("passes only allowlisted variables, and never AWS_*, DATABASE_* or TME_* ones", () => {
    const env = {
      PATH: "/bin",
      AWS_REGION: "x",
      DATABASE_URL: "y",
      TME_SECRET_A: "z",
      PGPASSWORD: "p",
      OTHER: "o",
    };
    expect(
      scrubbedEnvironment(["PATH", "AWS_REGION", "DATABASE_URL", "TME_SECRET_A", "PGPASSWORD"], env),
    ).toEqual({
      PATH: "/bin",
    });
  });
});
