import { Annotations, Match } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { synthesize } from "./synth.js";

interface NagSuppression {
  id: string;
  reason: string;
}

/** Every cdk-nag suppression recorded in the template's metadata. */
function suppressions(template: ReturnType<typeof synthesize>["template"]): NagSuppression[] {
  const resources = template.toJSON().Resources as Record<
    string,
    { Metadata?: { cdk_nag?: { rules_to_suppress?: NagSuppression[] } } }
  >;
  return Object.values(resources).flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []);
}

// A synth with the checks takes 20 s on an idle machine, several times that on a busy one.
const SYNTH_TIMEOUT_MS = 180_000;

describe("cdk-nag AwsSolutions checks", () => {
  it(
    "find no unsuppressed error or warning in the stack as cdk.json configures it",
    () => {
      const { stack, template } = synthesize();
      const annotations = Annotations.fromStack(stack);
      expect(annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
      expect(annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual([]);
      // cdk-nag only demands 10 characters; a real reason says why, which takes a sentence.
      for (const { id, reason } of suppressions(template)) {
        expect(reason.length, `${id}: ${reason}`).toBeGreaterThanOrEqual(60);
      }
    },
    SYNTH_TIMEOUT_MS,
  );

  it(
    "accept a disposable stack only through the suppressions its context value switches on",
    () => {
      const { stack, template } = synthesize({ deletionProtection: "false", dbMultiAz: "false" });
      expect(Annotations.fromStack(stack).findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))).toEqual(
        [],
      );
      const ids = suppressions(template).map((s) => s.id);
      expect(ids).toContain("AwsSolutions-RDS10");
      expect(ids).toContain("AwsSolutions-RDS3");
      template.hasResourceProperties("AWS::RDS::DBInstance", { DeletionProtection: false, MultiAZ: false });
    },
    SYNTH_TIMEOUT_MS,
  );
});
