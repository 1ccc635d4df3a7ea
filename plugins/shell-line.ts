import { createRequire } from "node:module";
import type sh from "mvdan-sh";
import picomatch from "picomatch";
import { PermanentTaskError } from "../functions/core/plugins/plugin.js";

/**
 * The check of a `/bin/sh` line (shell.allow_shell): the line is parsed as POSIX sh by a real
 * shell parser (mvdan-sh, the parser of shfmt), and every simple command in it, wherever it
 * stands (after `;`, `&&`, `|`, in a subshell, a loop or an `if`), must match a pattern of
 * shell.allowed_commands as written. Matching the whole line would let `echo a; id` pass
 * `echo *`. What a pattern cannot judge is refused outright:
 *
 * - command substitution (`$(...)`, backticks): a command hidden inside an argument;
 * - a command name that is not literal (`$CMD`, `e*o`): the name it runs is only known then;
 * - function definitions: they rename what runs;
 * - redirections to or from a file: only `N>&M`, `N<&M`, `/dev/null` and here-documents;
 * - anything the parser cannot parse, and bash-only syntax (`<(...)`, `[[`, `<<<`).
 */
export class ShellLineRefused extends PermanentTaskError {
  override name = "ShellLineRefused";
}

type Syntax = typeof sh.syntax;
type Node = Parameters<Syntax["NodeType"]>[0];

/**
 * mvdan-sh is a Go parser compiled to JavaScript: loading it costs about 17 MB of memory, and
 * only the lines of shell.allow_shell need it, so it loads on the first such check instead of
 * with every TME process. The literal require() is what the Lambda bundler sees and bundles (its
 * CommonJS wrapper runs on first call); run from source (ESM) there is no require, and
 * createRequire loads the same package.
 */
let loaded: Syntax | undefined;
function shSyntax(): Syntax {
  loaded ??= (
    (typeof require === "function"
      ? require("mvdan-sh")
      : createRequire(import.meta.url)("mvdan-sh")) as typeof sh
  ).syntax;
  return loaded;
}

/** Node types a line may contain. Anything else (function, bash-only clause) is refused. */
const ALLOWED_NODES = new Set([
  "File",
  "Stmt",
  "Comment",
  "CallExpr",
  "Assign",
  "BinaryCmd",
  "Subshell",
  "Block",
  "IfClause",
  "WhileClause",
  "ForClause",
  "WordIter",
  "CaseClause",
  "CaseItem",
  "Word",
  "Lit",
  "SglQuoted",
  "DblQuoted",
  "ParamExp",
  "Expansion",
  "Slice",
  "Replace",
  "ArithmExp",
  "BinaryArithm",
  "UnaryArithm",
  "ParenArithm",
  "Redirect",
]);

const REFUSED_NODES: Record<string, string> = {
  CmdSubst: "command substitution ($(...) or backticks) is not allowed",
  ProcSubst: "process substitution is not allowed",
  FuncDecl: "function definitions are not allowed",
};

/** mvdan-sh's RedirOperator values (its typings declare them as a const enum, not at run time). */
const DUP_IN = 58; // <&
const DUP_OUT = 59; // >&
const HEREDOC = 61; // <<
const DASH_HEREDOC = 62; // <<-

/** What a refused line is told it may use instead. */
export const SHELL_LINE_RULE =
  "each simple command must match a pattern of shell.allowed_commands; no $(...) or backticks, " +
  "a literal command name, no function definitions; redirections only N>&M, N<&M, /dev/null or here-documents";

/** Throws ShellLineRefused unless every simple command of the line matches a pattern. */
export function checkShellLine(line: string, patterns: readonly string[]): void {
  const source = Buffer.from(line, "utf8");
  // Offsets are in bytes of the UTF-8 text.
  const textOf = (node: Node) => source.subarray(node.Pos().Offset(), node.End().Offset()).toString("utf8");
  const syntax = shSyntax();
  let file: Node;
  try {
    file = syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(line, "command");
  } catch (error) {
    throw refused(`cannot be parsed as a POSIX sh line: ${parseMessage(error)}`);
  }
  // Two walks: what no pattern may allow (a substitution anywhere) is reported before a
  // simple command that merely matches no pattern.
  const structure = firstProblem(file, (node, type) => {
    if (REFUSED_NODES[type]) return `${REFUSED_NODES[type]} (${JSON.stringify(textOf(node).slice(0, 100))})`;
    if (!ALLOWED_NODES.has(type))
      return `${type} is not allowed (${JSON.stringify(textOf(node).slice(0, 100))})`;
    if (type === "Redirect") return redirectProblem(node, textOf);
    return undefined;
  });
  if (structure) throw refused(structure);
  const matchers = patterns.map((pattern) => picomatch.makeRe(pattern, { bash: true, dot: true }));
  const problem = firstProblem(file, (node, type) =>
    type === "CallExpr" ? callProblem(node, textOf, matchers) : undefined,
  );
  if (problem) throw refused(problem);
}

/** The first problem `check` finds in a walk of the tree, in source order. */
function firstProblem(
  root: Node,
  check: (node: Node, type: string) => string | undefined,
): string | undefined {
  const syntax = shSyntax();
  let problem: string | undefined;
  syntax.Walk(root, (node) => {
    if (!node || problem) return false;
    problem = check(node, syntax.NodeType(node));
    return problem === undefined;
  });
  return problem;
}

function refused(problem: string): ShellLineRefused {
  return new ShellLineRefused(`command refused: ${problem}; allowed: ${SHELL_LINE_RULE}`);
}

function parseMessage(error: unknown): string {
  // mvdan-sh throws a Go error value: its text is behind Error().
  const goError = error as { Error?: () => string; message?: string };
  const text = typeof goError.Error === "function" ? goError.Error() : (goError.message ?? String(error));
  return text.replace(/^command:/, "at ");
}

// biome-ignore lint/suspicious/noExplicitAny: mvdan-sh's node shapes differ by type
function redirectProblem(redirect: any, textOf: (node: Node) => string): string | undefined {
  const op: number = redirect.Op;
  if (op === HEREDOC || op === DASH_HEREDOC) return undefined;
  const target = redirect.Word ? textOf(redirect.Word) : "";
  if ((op === DUP_IN || op === DUP_OUT) && /^(\d+|-)$/.test(target)) return undefined;
  if (target === "/dev/null") return undefined;
  return `redirection ${JSON.stringify(textOf(redirect))} is not allowed`;
}

function callProblem(
  // biome-ignore lint/suspicious/noExplicitAny: mvdan-sh's node shapes differ by type
  call: any,
  textOf: (node: Node) => string,
  matchers: RegExp[],
): string | undefined {
  const name = call.Args[0];
  if (name && !isLiteralName(name)) {
    return `the command name ${JSON.stringify(textOf(name))} is not literal`;
  }
  const text = textOf(call);
  if (matchers.some((re) => re.test(text))) return undefined;
  return `${JSON.stringify(text.slice(0, 200))} matches no pattern of shell.allowed_commands`;
}

/** Quoted or plain text only: no expansion, and no unquoted glob character that could rename it. */
// biome-ignore lint/suspicious/noExplicitAny: mvdan-sh's node shapes differ by type
function isLiteralName(word: any): boolean {
  const syntax = shSyntax();
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return word.Parts.every((part: any) => {
    const type = syntax.NodeType(part);
    if (type === "SglQuoted") return true;
    if (type === "Lit") return !/[*?[]/.test(part.Value);
    // biome-ignore lint/suspicious/noExplicitAny: as above
    if (type === "DblQuoted") return part.Parts.every((inner: any) => syntax.NodeType(inner) === "Lit");
    return false;
  });
}
