import { fromEnv } from "@aws-sdk/credential-provider-env";

/**
 * Stands in for @aws-sdk/credential-provider-node inside the Lambda bundles (an esbuild alias
 * in constructs/tme-function.ts). Lambda hands a function its role's credentials in
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, and nowhere else, so the
 * default chain's other sources (profiles, SSO, IMDS, web identity, processes, and the STS and
 * SSO clients they bring) are about 100 KB of every bundle that a Lambda never uses.
 */
export const defaultProvider: typeof fromEnv = (init) => fromEnv(init);
