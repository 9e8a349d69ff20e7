// Builds Prompt Studio's browser pages into one directory the Python package serves at /static:
//
//   node build.mjs [--outdir ../app/http/static] [--dev]
//
// - graphiql-<hash>.js/.css: GraphiQL (React, the explorer plugin, graphql-ws) in one IIFE that
//   exposes PromptStudioGraphiQL.mount(element, config); nothing is fetched from a CDN.
// - console-<hash>.js/.css: the live console (Preact), PromptStudioConsole.mount(element, config).
// - manifest.json: logical name -> file, the versions of what went in, the hash of the sources
//   (so a build whose sources did not change can be skipped) and the compressed sizes.
// - a .gz and a .br copy of every file, served when the browser accepts them.
//
// The Python build (tools/web_build.py, run by the package build) calls this after `npm ci`.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const outdir = resolve(option("--outdir", join(here, "..", "app", "http", "static")));
const dev = args.includes("--dev");

/** The hash of everything that decides the output: the lockfile, this script and the sources. */
export function sourceHash() {
  const hash = createHash("sha256");
  const sources = [];
  const walk = (dir) => {
    for (const entry of readdirSync(join(here, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else sources.push(path);
    }
  };
  walk("src");
  sources.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // by code unit, as tools/web_build.py sorts
  for (const file of ["package.json", "package-lock.json", "build.mjs", ...sources]) {
    hash.update(file + "\0");
    hash.update(readFileSync(join(here, file)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

const version = (name) => JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;

const entries = {
  graphiql: { entry: "src/graphiql/main.jsx", globalName: "PromptStudioGraphiQL", jsx: "react" },
  console: { entry: "src/console/main.jsx", globalName: "PromptStudioConsole", jsx: "preact" },
};

async function build() {
  const started = Date.now();
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const manifest = {
    format: 1,
    builtAt: new Date().toISOString(),
    sourceHash: sourceHash(),
    node: process.version,
    packages: Object.fromEntries(
      ["graphiql", "@graphiql/react", "@graphiql/plugin-explorer", "@graphiql/toolkit", "graphql", "graphql-ws",
        "react", "react-dom", "preact", "esbuild"].map((name) => [name, version(name)]),
    ),
    files: {},
    sizes: {},
  };
  for (const [name, { entry, globalName, jsx }] of Object.entries(entries)) {
    const result = await esbuild.build({
      entryPoints: { [name]: join(here, entry) },
      bundle: true,
      format: "iife",
      globalName,
      minify: !dev,
      sourcemap: dev ? "inline" : false,
      target: ["es2020", "chrome100", "firefox100", "safari15"],
      outdir,
      entryNames: "[name]-[hash]",
      assetNames: "[name]-[hash]",
      loader: { ".woff2": "file", ".woff": "file", ".png": "file", ".svg": "file" },
      jsx: "automatic",
      jsxImportSource: jsx,
      define: { "process.env.NODE_ENV": dev ? '"development"' : '"production"' },
      legalComments: "linked",
      metafile: true,
      logLevel: "warning",
    });
    for (const output of Object.keys(result.metafile.outputs)) {
      const file = basename(output);
      if (file.endsWith(".js")) manifest.files[`${name}.js`] = file;
      else if (file.endsWith(".css")) manifest.files[`${name}.css`] = file;
    }
  }
  for (const file of readdirSync(outdir)) {
    const data = readFileSync(join(outdir, file));
    const gz = gzipSync(data, { level: 9 });
    const br = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
    writeFileSync(join(outdir, file + ".gz"), gz);
    writeFileSync(join(outdir, file + ".br"), br);
    manifest.sizes[file] = { bytes: data.length, gzip: gz.length, brotli: br.length };
  }
  writeFileSync(join(outdir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  for (const [logical, file] of Object.entries(manifest.files)) {
    const s = manifest.sizes[file];
    console.log(`  ${logical.padEnd(14)} ${file.padEnd(32)} ${kb(s.bytes).padStart(10)}  gzip ${kb(s.gzip).padStart(9)}`);
  }
  console.log(`web assets built in ${relative(process.cwd(), outdir) || "."} (${Date.now() - started} ms)`);
}

if (args.includes("--source-hash")) {
  console.log(sourceHash());
} else {
  build().catch((err) => {
    console.error(err?.stack || String(err));
    process.exit(1);
  });
}
