/**
 * Stands in for the `yaml` package inside the Lambda bundles (an esbuild alias in
 * constructs/tme-function.ts), where the configuration files are JSON: the stack converts
 * configurations/*.yaml when it bundles (config-as-json.mjs), and JSON is YAML, so the shared
 * loader (functions/config/load.ts) reads them unchanged. It saves the YAML parser, 120 KB of
 * every bundle. Only what load.ts uses is here; esbuild fails the build on any other import.
 */
export interface JsonDocument {
  errors: Array<{ message: string; linePos?: Array<{ line: number }> }>;
  toJS(): unknown;
}

export function parseDocument(text: string, _options?: unknown): JsonDocument {
  try {
    const value: unknown = JSON.parse(text);
    return { errors: [], toJS: () => value };
  } catch (error) {
    return {
      errors: [{ message: `not the JSON the bundle should carry: ${(error as Error).message}` }],
      toJS: () => undefined,
    };
  }
}
