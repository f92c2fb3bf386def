// Module resolution as a web bundler does it, for the packages a browser app gets differently
// from Node: Retell's SDK from its ES-module build ("module"), and isomorphic-ws from its
// "browser" file, which uses the page's global WebSocket instead of requiring `ws`.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const FIELDS = { "isomorphic-ws": "browser" };
const SDK = /^retell-client-js-sdk(-[\d.]+)?$/;
const remapped = new Set();

export async function resolve(specifier, context, next) {
  const field = FIELDS[specifier] || (SDK.test(specifier) ? "module" : null);
  if (!field) return next(specifier, context);
  const from = context.parentURL ? dirname(fileURLToPath(context.parentURL)) : process.cwd();
  const manifest = createRequire(join(from, "x.js")).resolve(`${specifier}/package.json`);
  const entry = JSON.parse(readFileSync(manifest, "utf8"))[field];
  const url = pathToFileURL(join(dirname(manifest), entry)).href;
  remapped.add(url);
  return { url, format: "module", shortCircuit: true };
}

export async function load(url, context, next) {
  return next(url, remapped.has(url) ? { ...context, format: "module" } : context);
}
