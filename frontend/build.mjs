// Bundles src/phone.js and the npm packages it uses into ONE minified file for the /phone page,
// with the licenses of the bundled packages in a comment at its top.
//
//   node build.mjs OUTFILE        (npm run build writes ../ringwell/web/static/phone/phone.js)
//
// The output depends only on the sources and the locked packages (no dates, no absolute paths), so a
// rebuild can be compared byte for byte with the committed bundle (tests/web/test_phone_bundle.py).

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = process.argv[2];
if (!outfile) {
  console.error("usage: node build.mjs OUTFILE");
  process.exit(2);
}

const result = await build({
  absWorkingDir: here,
  entryPoints: ["src/phone.js"],
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target: ["chrome109", "firefox115", "safari16"],
  charset: "utf8",
  legalComments: "none", // every bundled package's license is in the banner instead
  metafile: true,
  write: false,
  logLevel: "warning",
});

// The npm packages the bundle holds: node_modules/<name>/... or node_modules/@scope/<name>/...
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (match) {
    packages.add(match[1]);
  }
}

function licenseText(directory) {
  const name = readdirSync(directory).sort().find((file) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(file));
  return name ? readFileSync(join(directory, name), "utf8").trim() : null;
}

const entries = [...packages].sort().map((name) => {
  const directory = join(here, "node_modules", name);
  const manifest = JSON.parse(readFileSync(join(directory, "package.json"), "utf8"));
  const text = licenseText(directory);
  if (!text) {
    throw new Error(`${name}: no license file to put in the bundle`);
  }
  return { name, version: manifest.version, license: manifest.license, text };
});

const comment = (text) => text.replace(/\*\//g, "* /").split("\n").map((line) => ` * ${line}`.trimEnd());
const banner = [
  "/*!",
  " * Ringwell phone: the /phone page's script, built from frontend/ by `make phone-bundle`. Do not edit.",
  " *",
  " * It contains these npm packages:",
  ...entries.map((e) => ` *   ${e.name} ${e.version} (${e.license} license)`),
  ...entries.flatMap((e) => [" *", ` * --- ${e.name} ${e.version} ---`, ...comment(e.text)]),
  " */",
  "",
].join("\n");

const [output] = result.outputFiles;
const target = resolve(outfile);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, banner + output.text);
console.log(`${outfile}: ${(banner.length + output.text.length) / 1024 | 0} KiB (${entries.map((e) => e.name).join(", ")})`);
