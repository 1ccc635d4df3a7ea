// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these are shell lines, where ${...} is the point
import { describe, expect, it } from "vitest";
import { checkShellLine, ShellLineRefused } from "../../plugins/shell-line.js";

/** The reason a line is refused, or "allowed". */
function verdict(line: string, patterns: readonly string[] = ["echo *", "wc *", "true", "sort"]): string {
  try {
    checkShellLine(line, patterns);
    return "allowed";
  } catch (error) {
    expect(error).toBeInstanceOf(ShellLineRefused);
    const message = (error as Error).message;
    expect(message).toMatch(/^command refused: .*; allowed: each simple command must match/);
    return message.slice("command refused: ".length, message.indexOf("; allowed:"));
  }
}

describe("the /bin/sh line check (allow_shell)", () => {
  it('refuses the lines of finding 3 under allowed_commands: ["echo *"]', () => {
    expect(verdict("echo a; id", ["echo *"])).toBe('"id" matches no pattern of shell.allowed_commands');
    expect(verdict("echo $(cat /etc/passwd)", ["echo *"])).toBe(
      'command substitution ($(...) or backticks) is not allowed ("$(cat /etc/passwd)")',
    );
    expect(verdict("echo `id`", ["echo *"])).toContain("command substitution");
  });

  it("checks every simple command wherever it stands", () => {
    const hostile = [
      "echo a && id",
      "echo a || id",
      "echo a | id",
      "echo a & id",
      "echo a\nid",
      "(id)",
      "{ id; }",
      "if true; then id; fi",
      "while true; do id; done",
      "for x in a; do id; done",
      "case a in a) id;; esac",
      "! id",
      "echo a;id",
    ];
    for (const line of hostile)
      expect(verdict(line), line).toBe('"id" matches no pattern of shell.allowed_commands');
  });

  it("refuses substitutions hidden in quotes, parameter expansions and here-documents", () => {
    for (const line of [
      'echo "$(id)"',
      "echo ${x:-$(id)}",
      "echo ${x:=`id`}",
      "X=$(id) echo a",
      "echo $((1 + $(id)))",
      "wc -l <<EOF\n$(id)\nEOF",
    ])
      expect(verdict(line), line).toContain("command substitution");
  });

  it("refuses a command name that is not literal, and assignments that no pattern allows", () => {
    expect(verdict("$CMD a")).toBe('the command name "$CMD" is not literal');
    expect(verdict('"$CMD" a')).toBe('the command name "\\"$CMD\\"" is not literal');
    expect(verdict("ech? a")).toBe('the command name "ech?" is not literal');
    expect(verdict("PATH=/tmp/evil echo a")).toBe(
      '"PATH=/tmp/evil echo a" matches no pattern of shell.allowed_commands',
    );
    expect(verdict("PATH=/tmp/evil")).toBe('"PATH=/tmp/evil" matches no pattern of shell.allowed_commands');
  });

  it("refuses redirections to files, function definitions and what it cannot parse", () => {
    expect(verdict("echo a > /etc/cron.d/x")).toBe('redirection "> /etc/cron.d/x" is not allowed');
    expect(verdict("wc -l < /data/pg-password")).toBe('redirection "< /data/pg-password" is not allowed');
    expect(verdict("echo a 3<>/dev/tcp/x/1")).toContain("redirection");
    expect(verdict("echo() { id; }; echo a")).toContain("function definitions are not allowed");
    expect(verdict("echo a &&")).toMatch(/^cannot be parsed as a POSIX sh line: at 1:8: && must be followed/);
    expect(verdict("echo 'unterminated")).toMatch(/^cannot be parsed/);
    // Bash-only syntax is not POSIX sh (/bin/sh is dash on Debian): refused by the parser.
    expect(verdict("wc -l <(id)")).toMatch(/^cannot be parsed/);
    expect(verdict("echo a <<< x")).toMatch(/^cannot be parsed/);
  });

  it("allows pipelines, lists, quoting, expansions in arguments, fd duplication and /dev/null", () => {
    for (const line of [
      "echo one two | wc -w",
      "echo a && echo b || true",
      "echo 'a; id' '$(not run)'",
      'echo "$HOME" ${LANG:-C}',
      "echo a 2>&1 >/dev/null | sort",
      "echo a >&2",
      "wc -l <<'EOF'\nline $(id)\nEOF",
      "if true; then echo yes; fi",
      "for x in 1 2; do echo $x; done",
      "echo é ü",
    ])
      expect(verdict(line), line).toBe("allowed");
  });
});
