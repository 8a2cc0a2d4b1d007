// Validates an AsyncAPI document with the official JavaScript parser (@asyncapi/parser), an
// implementation independent of FastStream's generator.
//
//   node validate_asyncapi.mjs <folder where @asyncapi/parser is installed> <document>
//
// Prints every diagnostic (severity, JSON path, message) and exits 1 when the parser reports an
// error or cannot read the document, 0 otherwise (warnings and hints are printed, not fatal).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [installDir, documentPath] = process.argv.slice(2);
if (!installDir || !documentPath) {
  console.error("usage: node validate_asyncapi.mjs <install dir> <document>");
  process.exit(2);
}
const require = createRequire(join(resolve(installDir), "package.json"));
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const names = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([k, v]) => [v, k]));
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(documentPath, "utf8"));
for (const d of diagnostics) {
  console.log(`${names[d.severity] ?? d.severity}\t${d.path.join(".") || "(root)"}\t${d.code}\t${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (document === undefined || errors.length > 0) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`VALID: AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ` +
  `${document.operations().length} operation(s), ${diagnostics.length} diagnostic(s)`);
