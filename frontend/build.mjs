// Builds the playground's page into the Python package (src/initlab/playground/static/):
// app.js (src/main.ts and uPlot, one IIFE), app.css (style.css and uPlot's CSS), index.html.
// Minified, no sourcemap, no timestamps: the same sources and lock file give the same bytes,
// so CI can rebuild and compare with the committed files.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "initlab", "playground", "static");
mkdirSync(out, { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: ["src/main.ts"],
  outfile: join(out, "app.js"), // the CSS imported by main.ts lands beside it, as app.css
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
copyFileSync(join(here, "index.html"), join(out, "index.html"));
