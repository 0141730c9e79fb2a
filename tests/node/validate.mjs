// Compile painedge's JSON Schema with Ajv in its default strict mode, then validate
// one message per line of stdin (JSON). Prints one line per message: "ok" or the errors.
// Exit 2 when the schema does not compile.
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";

const schema = JSON.parse(readFileSync(process.argv[2], "utf8"));
let validate;
try {
  validate = new Ajv2020().compile(schema);
} catch (e) {
  console.log(`schema: ${e.message}`);
  process.exit(2);
}
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim());
for (const line of lines) {
  const ok = validate(JSON.parse(line));
  console.log(ok ? "ok" : JSON.stringify(validate.errors.map((e) => `${e.instancePath} ${e.message}`)));
}
