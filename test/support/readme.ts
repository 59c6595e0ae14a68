/**
 * README.md's code blocks as checked examples (the convention is in docs/ARCHITECTURE.md, "README
 * code blocks"). A fence's info string is `<language> <attribute>…`:
 *
 *   ```ts name=server file=server.mts   Node code; other blocks may name it as their prelude
 *   ```ts prelude=server                 checked after the block named `server`, in one file
 *   ```js browser file=public/app.js     browser code (DOM lib, the client's .d.ts)
 *   ```html file=public/index.html       a page, loaded in Chromium under the demo's CSP
 *   ```sh exempt=shell                   not checked: a shell command
 *   ```text exempt=output                not checked: what a command or a listener prints
 *   ```nginx exempt=config               not checked here: another program's configuration (say which test runs it)
 *   ```js exempt=run file=examples/x.mjs  not type-checked: plain JavaScript that a test runs as it is (byte-identical to that file)
 *
 * js and ts blocks are type-checked by the TypeScript compiler API, one program per block, against
 * the built package (`tokensec` resolves to dist/ through package.json `exports`, as in a consumer
 * project): Node blocks as a strict nodenext ES module, browser blocks as a strict ES module with
 * the DOM lib and bundler resolution. A js block must also be plain JavaScript (no TypeScript
 * syntax), since a reader saves it as a .js/.mjs file.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const README = 'README.md';

export interface Block {
  /** The fence's language (first word of the info string), lower-cased. */
  lang: string;
  /** `key=value` attributes of the info string; a bare word is `word: ''`. */
  attrs: Record<string, string>;
  info: string;
  code: string;
  /** 1-based README line of the opening fence. */
  line: number;
  /** The headings above the block, outermost first, e.g. `## Server › ### API on another origin`. */
  heading: string;
}

const CODE_LANGS = new Set(['js', 'ts', 'javascript', 'typescript', 'mjs', 'mts']);
const ATTRIBUTES = new Set(['name', 'prelude', 'browser', 'file', 'exempt']);
const EXEMPTIONS = new Set(['shell', 'output', 'config', 'run']);

/** Every fenced block of the markdown, with its info string parsed and the heading it is under. */
export function readmeBlocks(markdown = readFileSync(`${ROOT}${README}`, 'utf8')): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  const headings: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = (heading[1] ?? '#').length;
      headings.length = level - 1;
      headings[level - 1] = `${heading[1]} ${heading[2]}`;
      continue;
    }
    const fence = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(line);
    if (!fence) continue;
    const marker = fence[2] ?? '```';
    const info = (fence[3] ?? '').trim();
    const indent = (fence[1] ?? '').length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (l.trim().startsWith(marker[0]!.repeat(marker.length)) && l.trim().replace(/[`~]/g, '') === '') break;
      body.push(l.slice(Math.min(indent, l.length - l.trimStart().length)));
    }
    const [lang = '', ...words] = info.split(/\s+/).filter(Boolean);
    const attrs: Record<string, string> = {};
    for (const word of words) {
      const eq = word.indexOf('=');
      if (eq === -1) attrs[word] = '';
      else attrs[word.slice(0, eq)] = word.slice(eq + 1);
    }
    blocks.push({
      lang: lang.toLowerCase(),
      attrs,
      info,
      code: body.join('\n') + '\n',
      line: i + 1,
      heading: headings.filter(Boolean).join(' › ') || '(top)',
    });
    i = j;
  }
  return blocks;
}

export const where = (block: Block) => `README.md:${block.line} (${block.heading}), \`\`\`${block.info}`;
/** A js/ts block to compile (not one marked exempt). */
export const isCode = (block: Block) => CODE_LANGS.has(block.lang) && block.attrs.exempt === undefined;
export const isTypeScript = (block: Block) => block.lang === 'ts' || block.lang === 'typescript' || block.lang === 'mts';

const CONVENTION = 'See docs/ARCHITECTURE.md, "README code blocks", for the info-string convention.';

/** Problems with a block's marking: an unknown language or attribute, a missing prelude, an unmarked shell block. */
export function markingProblems(block: Block, all: Block[]): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(block.attrs)) {
    if (!ATTRIBUTES.has(key)) problems.push(`unknown attribute "${key}" (known: ${[...ATTRIBUTES].join(', ')}).`);
  }
  const exempt = block.attrs.exempt;
  if (exempt !== undefined) {
    if (!EXEMPTIONS.has(exempt))
      problems.push(
        `exempt=${exempt}: say exempt=shell (a command), exempt=output (printed text), exempt=config (another program's configuration) or exempt=run (JavaScript a test runs as it is).`,
      );
  } else if (isCode(block)) {
    const prelude = block.attrs.prelude;
    if (prelude !== undefined) {
      const named = all.filter((b) => b.attrs.name === prelude);
      if (named.length !== 1)
        problems.push(
          `prelude=${prelude}: README must show exactly one block marked name=${prelude} (found ${named.length}). Add it, or make this block self-contained.`,
        );
      else if ((named[0]?.attrs.browser !== undefined) !== (block.attrs.browser !== undefined))
        problems.push(`prelude=${prelude}: the prelude and this block must both be browser code or both Node code.`);
    }
    if (block.attrs.name !== undefined && all.filter((b) => b.attrs.name === block.attrs.name).length > 1)
      problems.push(`name=${block.attrs.name} is used by more than one block; names must be unique.`);
  } else if (block.lang === 'html') {
    if (block.attrs.file !== undefined && !/^public\/[\w.-]+\.html$/.test(block.attrs.file))
      problems.push(`file=${block.attrs.file}: a page is saved as public/<name>.html (the Server block serves public/).`);
  } else if (block.lang === 'json') {
    // checked by JSON.parse
  } else {
    problems.push(
      `a \`\`\`${block.lang || '(no language)'} block is neither checked nor exempt. Use js, ts, html or json, or mark it exempt: \`\`\`${block.lang || 'sh'} exempt=shell for a command, \`\`\`text exempt=output for printed output.`,
    );
  }
  return problems.map((p) => `${where(block)}: ${p} ${CONVENTION}`);
}

// One compiler host for every program, caching lib and package declaration files across blocks.
const sourceCache = new Map<string, ts.SourceFile>();

function compilerOptions(browser: boolean, js: boolean): ts.CompilerOptions {
  const common: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, allowJs: js };
  return browser
    ? {
        ...common,
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
        types: [],
      }
    : {
        ...common,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        lib: ['lib.es2022.d.ts'],
        types: ['node'],
        esModuleInterop: true,
      };
}

function program(fileName: string, text: string, options: ts.CompilerOptions): { program: ts.Program; file: ts.SourceFile } {
  const base = ts.createCompilerHost(options, true);
  const host: ts.CompilerHost = {
    ...base,
    fileExists: (f) => f === fileName || base.fileExists(f),
    readFile: (f) => (f === fileName ? text : base.readFile(f)),
    getSourceFile: (f, version, onError) => {
      if (f === fileName) return ts.createSourceFile(f, text, version, true);
      const key = `${f}\0${typeof version === 'object' ? `${version.languageVersion}:${version.impliedNodeFormat}` : version}`;
      let file = sourceCache.get(key);
      if (!file) {
        file = base.getSourceFile(f, version, onError);
        if (file) sourceCache.set(key, file);
      }
      return file;
    },
  };
  const p = ts.createProgram({ rootNames: [fileName], options, host });
  const file = p.getSourceFile(fileName);
  if (!file) throw new Error(`TypeScript did not load ${fileName}`);
  return { program: p, file };
}

/** Where a block's checked file lives: inside the repository, so `tokensec` resolves to this package's dist/. */
const virtualPath = (block: Block, ext: string) => `${ROOT}test-results/readme/L${block.line}${ext}`;

/**
 * Type errors of a js/ts block, each as `README.md:<line>: TS<code> <message>`, with its prelude
 * (when it names one) placed before it in the same file. Empty when the block compiles.
 */
export function compileErrors(block: Block, all: Block[]): string[] {
  const browser = block.attrs.browser !== undefined;
  const prelude = block.attrs.prelude === undefined ? undefined : all.find((b) => b.attrs.name === block.attrs.prelude);
  const preludeText = prelude ? prelude.code : '';
  const preludeLines = preludeText ? preludeText.split('\n').length - 1 : 0;
  const errors: string[] = [];
  const locate = (file: ts.SourceFile, start: number | undefined, offsetLines: number, owner: Block) => {
    if (start === undefined) return 'README.md';
    const { line } = file.getLineAndCharacterOfPosition(start);
    const inPrelude = line < offsetLines;
    const readmeLine = inPrelude ? (prelude?.line ?? 0) + 1 + line : owner.line + 1 + line - offsetLines;
    return `README.md:${readmeLine}${inPrelude ? ` (in prelude ${prelude?.attrs.name})` : ''}`;
  };
  const report = (diagnostics: readonly ts.Diagnostic[], offsetLines: number) => {
    for (const d of diagnostics) {
      const at = d.file ? locate(d.file, d.start, offsetLines, block) : 'compiler';
      errors.push(`${at}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    }
  };

  // Type-checked as TypeScript (what a TypeScript reader gets when pasting it into a .mts/.ts file).
  const ext = browser ? '.ts' : '.mts';
  const checked = program(virtualPath(block, ext), preludeText + block.code, compilerOptions(browser, false));
  report(
    [
      ...checked.program.getOptionsDiagnostics(),
      ...checked.program.getGlobalDiagnostics(),
      ...checked.program.getSyntacticDiagnostics(checked.file),
      ...checked.program.getSemanticDiagnostics(checked.file),
    ],
    preludeLines,
  );
  // A js block must also be JavaScript: no type annotations, `!`, `as`, `declare`, interfaces…
  if (!isTypeScript(block)) {
    const js = program(virtualPath(block, '.mjs'), block.code, compilerOptions(browser, true));
    report(js.program.getSyntacticDiagnostics(js.file), 0);
  }
  return errors;
}

/** The failure text for a block that does not compile: where, what, and how to fix it. */
export function compileFailure(block: Block, errors: string[]): string {
  const kind = block.attrs.browser !== undefined ? 'a strict browser module (DOM lib, bundler resolution)' : 'a strict nodenext ES module';
  return [
    `${where(block)} does not compile as ${kind}:`,
    ...errors.map((e) => `  ${e}`),
    'How to fix: a reader copies this block into a fresh project, so it must compile as written. Import and define every name it uses,',
    'or continue a block README shows by adding prelude=<name> to the info string (that block carries name=<name>).',
    'Browser code that runs in the page is marked `browser`; a js block must stay plain JavaScript. ' + CONVENTION,
  ].join('\n');
}

export interface ReadmeServer {
  origin: string;
  /** The reader's project: server.mjs and public/. */
  dir: string;
  /** The pages README shows, as saved under public/: `file=` blocks by their name, others as block-L<line>.html. */
  pages: { block: Block; path: string }[];
  /** What the server printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs the Server block the way a reader would: saved as a file next to `public/` holding every
 * `file=` block (and each other html block as `public/block-L<line>.html`), started with `node`
 * (TypeScript types stripped by the compiler, nothing else changed) on a free port with the three
 * environment variables the Server section names. The project sits in test-results/ inside the
 * repository, so `tokensec` is this package's built dist/ and the other imports its node_modules.
 */
export interface RunOptions {
  /** A block "added to the Server example, before its routes": inserted before the Server block's first route. */
  insert?: Block;
  /** Placeholders README uses and what they are here, e.g. `https://api.example` → the server's origin. */
  replace?: Record<string, string>;
}

export async function startReadmeServer(all: Block[], port: number, { insert, replace = {} }: RunOptions = {}): Promise<ReadmeServer> {
  const serverBlock = all.find((b) => b.attrs.name === 'server');
  if (!serverBlock) throw new Error("README.md has no block marked name=server (the Server section's app). " + CONVENTION);
  const substitute = (text: string) => Object.entries(replace).reduce((t, [from, to]) => t.replaceAll(from, to), text);
  let source = serverBlock.code;
  if (insert) {
    const lines = source.split('\n');
    const firstRoute = lines.findIndex((line) => /^app\.(get|post|put|delete|all)\(/.test(line));
    if (firstRoute === -1) throw new Error(`${where(serverBlock)}: no route (app.get/app.post) to insert ${where(insert)} before.`);
    lines.splice(firstRoute, 0, insert.code);
    source = lines.join('\n');
  }
  const dir = join(ROOT, 'test-results', `readme-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'public'), { recursive: true });
  const js = ts.transpileModule(substitute(source), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  writeFileSync(join(dir, 'server.mjs'), js.outputText);
  const pages: ReadmeServer['pages'] = [];
  for (const block of all) {
    const file = block.attrs.file;
    if (block.attrs.exempt !== undefined) continue;
    if (file?.startsWith('public/')) {
      writeFileSync(join(dir, file), substitute(block.code));
      if (block.lang === 'html') pages.push({ block, path: `/${file.slice('public/'.length)}` });
    } else if (block.lang === 'html') {
      writeFileSync(join(dir, 'public', `block-L${block.line}.html`), block.code);
      pages.push({ block, path: `/block-L${block.line}.html` });
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const child = spawn(process.execPath, ['server.mjs'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      APP_ORIGIN: `http://127.0.0.1:${port}`,
      SESSION_SECRET: randomBytes(32).toString('hex'),
      TOKEN_PRIVATE_KEY: privateKey,
      TOKEN_PUBLIC_KEY: publicKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${where(serverBlock)}: the Server block exited with code ${child.exitCode} when started with node:\n${output}`);
    const ready = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(
        `${where(serverBlock)}: the Server block did not listen on PORT=${port} within 30 s. It must listen on process.env.PORT.\n${output}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    origin: `http://127.0.0.1:${port}`,
    dir,
    pages,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill();
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
