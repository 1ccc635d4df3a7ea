// Run by the bundling hook of every TME function (constructs/tme-function.ts):
//   node config-as-json.mjs <configurations dir> <bundle's configurations dir>
// writes each *.yaml there as the JSON it parses to, under the same name. JSON is YAML, so
// the shared loader reads the files unchanged, with the bundle's JSON-only stand-in for the
// yaml package (yaml-as-json.ts). A file that is not valid YAML fails the synth, here, with
// the line the local runtime would report.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseDocument } from "yaml";

const [from, to] = process.argv.slice(2);
if (!from || !to) throw new Error("usage: node config-as-json.mjs <from dir> <to dir>");
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from).filter((f) => f.endsWith(".yaml"))) {
  const file = path.join(from, name);
  // The options functions/config/load.ts parses with, so both read the same values.
  const doc = parseDocument(readFileSync(file, "utf8"), { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0];
    throw new Error(`${file}:${first.linePos?.[0]?.line ?? "?"}: not valid YAML: ${first.message}`);
  }
  writeFileSync(path.join(to, name), `${JSON.stringify(doc.toJS() ?? {}, null, 2)}\n`);
}
