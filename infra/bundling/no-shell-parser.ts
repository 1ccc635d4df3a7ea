/**
 * Stands in for `mvdan-sh` inside the Lambda bundles (an esbuild alias in
 * constructs/tme-function.ts). The parser is 1.1 MB of JavaScript, more than a whole bundle may
 * be, and it is used only to check `/bin/sh` lines under shell.allow_shell; in the cloud a
 * command runs as argv (shell is off unless the stack is deployed with enableShell), so every
 * allow_shell line is refused there, saying why (plugins/shell-line.ts reports it as a 422).
 */
const refuse = () => {
  throw new Error(
    "the Lambda bundles carry no shell parser, so shell.allow_shell lines are refused in the cloud; commands run as argv there",
  );
};

export default {
  syntax: {
    LangPOSIX: 1,
    Variant: () => () => {},
    NewParser: () => ({ Parse: refuse }),
    Walk: refuse,
    NodeType: refuse,
  },
};
