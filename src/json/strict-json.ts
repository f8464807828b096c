/**
 * A strict RFC 8259 JSON parser for request bodies and whitelist files.
 *
 * `JSON.parse` silently keeps the last of duplicate keys, so a body like
 * `{"oin":"A","oin":"B"}` (or `{"oin":"A","o\u0069n":"B"}`) could make
 * oingate authorise tenant B while the upstream API reads tenant A. It also
 * has no nesting limit. This parser:
 *
 * - refuses duplicate keys, compared after escape decoding;
 * - refuses nesting deeper than `maxDepth` (default 64) without recursion,
 *   so no input can overflow the JS stack;
 * - defines a `__proto__` key as an ordinary own property (an assignment
 *   would set the prototype), so no input can pollute prototypes; objects
 *   are otherwise plain, which keeps large documents compact and fast;
 * - otherwise accepts exactly what RFC 8259 accepts (no BOM, no comments,
 *   no trailing commas, no NaN/Infinity/hex, no raw control characters in
 *   strings); numbers are converted with `Number()` like `JSON.parse` does
 *   (so `1e400` is `Infinity`), and lone surrogate escapes are accepted like
 *   `JSON.parse` accepts them.
 *
 * Pure module: no I/O, no framework imports.
 */

export type StrictJsonErrorCode = 'ERR_JSON_SYNTAX' | 'ERR_JSON_DEPTH' | 'ERR_JSON_DUPLICATE_KEY';

export class StrictJsonError extends Error {
  readonly code: StrictJsonErrorCode;
  /** 0-based offset in UTF-16 code units into the parsed text. */
  readonly position: number;
  /** 1-based line; LF, CR and CRLF each end a line. */
  readonly line: number;
  /** 1-based column in UTF-16 code units. */
  readonly column: number;

  constructor(code: StrictJsonErrorCode, message: string, position: number, line: number, column: number) {
    super(message);
    this.name = 'StrictJsonError';
    this.code = code;
    this.position = position;
    this.line = line;
    this.column = column;
  }
}

export interface StrictJsonOptions {
  /** Maximum number of nested objects/arrays; default 64. */
  maxDepth?: number;
  /**
   * String values never share memory with `text`. V8 makes a substring of 13
   * or more characters a view of its parent, so without this one OIN kept
   * from a whitelist keeps the whole file's text alive. Costs a copy per such
   * string; default false (a parse whose result dies with its text).
   */
  detached?: boolean;
  /** Told of each element of arrays of the top-level object as it completes, one per key (see {@link ArrayElements}). */
  elements?: ArrayElements | readonly ArrayElements[];
}

/**
 * The elements of the array under `key` of the top-level object, one by one
 * as each completes, with its text exactly as written. What `element`
 * returns takes its place in the array: a caller that keeps what it needs of
 * each element need not keep them all. The rest of the input may still be
 * refused after an element was reported; only a parse that succeeds vouches
 * for it.
 */
export interface ArrayElements {
  readonly key: string;
  element(value: unknown, text: string): unknown;
}

// V8's shortest substring that is a view of its parent (SlicedString::kMinLength).
const SHORTEST_VIEW = 13;

export const DEFAULT_MAX_DEPTH = 64;

/** Longest key or character quoted verbatim in an error message. */
const MAX_QUOTED = 64;

// Character codes.
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const DIGIT_0 = 0x30;
const DIGIT_1 = 0x31;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const OPEN_BRACKET = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;
const LOWER_B = 0x62;
const LOWER_E = 0x65;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;
const LOWER_R = 0x72;
const LOWER_T = 0x74;
const LOWER_U = 0x75;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const BOM = 0xfeff;

type JsonObject = Record<string, unknown>;

const hasOwn = Object.prototype.hasOwnProperty;

/** Value of a hex digit character code, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(position, text.length);
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) {
      line++;
      lineStart = i + 1;
    } else if (c === CR) {
      if (i + 1 < end && text.charCodeAt(i + 1) === LF) i++;
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: position - lineStart + 1 };
}

function quote(s: string): string {
  const shown = s.length > MAX_QUOTED ? `${s.slice(0, MAX_QUOTED)}…` : s;
  return JSON.stringify(shown);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function pathSegment(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${quote(key)}]`;
}

/** A run of string characters that need no attention: anything but a quote, a backslash or a control character. */
const PLAIN_RUN = /[^"\\\x00-\x1f]*/y;
/** Characters of a string looked at one by one before PLAIN_RUN takes over (measured: the break-even is about here). */
const SHORT_STRING = 24;

const PAUSED: unique symbol = Symbol('paused');

function checkedMaxDepth(maxDepth: number = DEFAULT_MAX_DEPTH): number {
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 0) {
    throw new RangeError(`maxDepth must be a non-negative integer, got ${String(maxDepth)}`);
  }
  return maxDepth;
}

class Parser {
  private readonly text: string;
  private readonly len: number;
  private readonly maxDepth: number;
  private readonly detached: boolean;
  private pos = 0;

  // Open containers, innermost last. Parallel arrays indexed 0..depth-1;
  // they are overwritten rather than shrunk.
  private depth = 0;
  private readonly containers: (JsonObject | unknown[])[] = [];
  private readonly isArray: boolean[] = [];
  /** For objects: the key whose value is being parsed. */
  private readonly keys: string[] = [];
  /** Where each open container starts. */
  private readonly starts: number[] = [];
  /** Who is told of the elements of the top-level array under each key. */
  private readonly elements: ReadonlyMap<string, ArrayElements> | undefined;

  constructor(text: string, maxDepth: number, elements: ArrayElements | readonly ArrayElements[] | undefined, detached = false) {
    this.text = text;
    this.len = text.length;
    this.maxDepth = maxDepth;
    this.elements = elements === undefined ? undefined : new Map((Array.isArray(elements) ? elements : [elements as ArrayElements]).map((e) => [e.key, e]));
    this.detached = detached;
  }

  // ---- errors -----------------------------------------------------------

  private fail(code: StrictJsonErrorCode, problem: string, position: number, suffix = ''): never {
    const { line, column } = lineAndColumn(this.text, position);
    throw new StrictJsonError(code, `${problem} at line ${line} column ${column}${suffix}`, position, line, column);
  }

  private syntax(problem: string, position: number): never {
    return this.fail('ERR_JSON_SYNTAX', problem, position);
  }

  /** "unexpected character" or "unexpected end of input" at `position`. */
  private unexpected(position: number, context = ''): never {
    if (position >= this.len) return this.syntax(`unexpected end of input${context}`, position);
    const cp = this.text.codePointAt(position) as number;
    const ch = String.fromCodePoint(cp);
    if (cp === BOM) {
      return this.syntax('unexpected byte order mark U+FEFF', position);
    }
    return this.syntax(`unexpected character ${JSON.stringify(ch)}${context}`, position);
  }

  /** JSONPath-like location of the container at stack index `upTo` (exclusive). */
  private pathTo(upTo: number): string {
    let path = '$';
    for (let i = 0; i < upTo; i++) {
      const container = this.containers[i];
      if (this.isArray[i]) path += `[${(container as unknown[]).length}]`;
      else path += pathSegment(this.keys[i] as string);
    }
    return path;
  }

  // ---- lexing -----------------------------------------------------------

  private skipWhitespace(i: number): number {
    const text = this.text;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === SPACE || c === LF || c === CR || c === TAB) i++;
      else return i;
    }
  }

  /** Parses a string whose opening quote is at `this.pos`. */
  private parseString(): string {
    const text = this.text;
    const len = this.len;
    const start = this.pos + 1;
    // Keys and short values end within a few characters: a plain loop. A
    // longer string is run through by a regular expression in native code,
    // several times faster per character than the loop, but dearer to start.
    const loopEnd = Math.min(len, start + SHORT_STRING);
    let i = start;
    let c = 0;
    for (; i < loopEnd; i++) {
      c = text.charCodeAt(i);
      if (c === QUOTE || c === BACKSLASH || c < SPACE) break;
    }
    if (i === loopEnd) {
      PLAIN_RUN.lastIndex = i;
      PLAIN_RUN.test(text);
      i = PLAIN_RUN.lastIndex;
      if (i >= len) return this.syntax('unterminated string starting', this.pos);
      c = text.charCodeAt(i);
    }
    if (c === QUOTE) {
      this.pos = i + 1;
      return text.slice(start, i);
    }
    if (c === BACKSLASH) return this.parseEscapedString(start, i);
    return this.controlCharacter(c, i);
  }

  private controlCharacter(c: number, i: number): never {
    const hex = c.toString(16).toUpperCase().padStart(4, '0');
    return this.syntax(`unescaped control character U+${hex} in string`, i);
  }

  /** Slow path: the string starting at `start` has a backslash at `i`. */
  private parseEscapedString(start: number, i: number): string {
    const text = this.text;
    const len = this.len;
    let out = '';
    let chunk = start;
    for (;;) {
      if (i >= len) return this.syntax('unterminated string starting', start - 1);
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.pos = i + 1;
        return chunk === i ? out : out + text.slice(chunk, i);
      }
      if (c < SPACE) return this.controlCharacter(c, i);
      if (c !== BACKSLASH) {
        i++;
        continue;
      }
      if (chunk < i) out += text.slice(chunk, i);
      const escapeAt = i;
      if (i + 1 >= len) return this.syntax('unterminated string starting', start - 1);
      const e = text.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case QUOTE: out += '"'; break;
        case BACKSLASH: out += '\\'; break;
        case SLASH: out += '/'; break;
        case LOWER_B: out += '\b'; break;
        case LOWER_F: out += '\f'; break;
        case LOWER_N: out += '\n'; break;
        case LOWER_R: out += '\r'; break;
        case LOWER_T: out += '\t'; break;
        case LOWER_U: {
          let code = 0;
          for (let k = 0; k < 4; k++) {
            const h = hexValue(text.charCodeAt(i + k));
            if (h < 0) {
              const bad = i + k >= len ? 'end of input' : `character ${quote(text.charAt(i + k))}`;
              return this.syntax(`invalid unicode escape (${bad} where a hex digit was expected)`, escapeAt);
            }
            code = (code << 4) | h;
          }
          i += 4;
          // Lone surrogates are kept as-is, exactly like JSON.parse.
          out += String.fromCharCode(code);
          break;
        }
        default: {
          const shown = String.fromCodePoint(text.codePointAt(i - 1) as number);
          return this.syntax(`invalid escape ${quote('\\' + shown)} in string`, escapeAt);
        }
      }
      chunk = i;
    }
  }

  /** Parses a number starting at `this.pos` (a '-' or a digit). */
  private parseNumber(): number {
    const text = this.text;
    const start = this.pos;
    let i = start;
    let negative = false;
    let c = text.charCodeAt(i);
    if (c === MINUS) {
      negative = true;
      c = text.charCodeAt(++i);
    }
    // Integer part; small integers are accumulated directly.
    let value = 0;
    if (c === DIGIT_0) {
      c = text.charCodeAt(++i);
      if (c >= DIGIT_0 && c <= DIGIT_9) return this.syntax('leading zero in number', start);
    } else if (c >= DIGIT_1 && c <= DIGIT_9) {
      do {
        value = value * 10 + (c - DIGIT_0);
        c = text.charCodeAt(++i);
      } while (c >= DIGIT_0 && c <= DIGIT_9);
    } else {
      return this.unexpected(i, negative ? ', expected a digit after "-"' : '');
    }
    let simple = true;
    if (c === DOT) {
      simple = false;
      c = text.charCodeAt(++i);
      if (!(c >= DIGIT_0 && c <= DIGIT_9)) return this.unexpected(i, ', expected a digit after the decimal point');
      do c = text.charCodeAt(++i);
      while (c >= DIGIT_0 && c <= DIGIT_9);
    }
    if (c === LOWER_E || c === UPPER_E) {
      simple = false;
      c = text.charCodeAt(++i);
      if (c === PLUS || c === MINUS) c = text.charCodeAt(++i);
      if (!(c >= DIGIT_0 && c <= DIGIT_9)) return this.unexpected(i, ', expected a digit in the exponent');
      do c = text.charCodeAt(++i);
      while (c >= DIGIT_0 && c <= DIGIT_9);
    }
    this.pos = i;
    // Integers below 2^53 accumulate exactly; anything else goes through Number().
    if (simple && value <= Number.MAX_SAFE_INTEGER) return negative ? -value : value;
    return Number(text.slice(start, i));
  }

  private parseLiteral<T>(word: string, value: T): T {
    const text = this.text;
    const start = this.pos;
    for (let k = 1; k < word.length; k++) {
      if (text.charCodeAt(start + k) !== word.charCodeAt(k)) {
        return this.unexpected(start + k, ` in literal, expected "${word}"`);
      }
    }
    this.pos = start + word.length;
    return value;
  }

  /** Parses an object key at `this.pos` (after whitespace) plus the colon. */
  private parseKey(obj: JsonObject): string {
    const text = this.text;
    const keyAt = this.pos;
    if (text.charCodeAt(keyAt) !== QUOTE) {
      return this.unexpected(keyAt, ', expected a string key');
    }
    const key = this.parseString();
    if (hasOwn.call(obj, key)) {
      this.fail('ERR_JSON_DUPLICATE_KEY', `duplicate key ${quote(key)}`, keyAt, ` (path ${this.pathTo(this.depth - 1)})`);
    }
    let i = this.skipWhitespace(this.pos);
    if (text.charCodeAt(i) !== COLON) return this.unexpected(i, ', expected ":" after object key');
    this.pos = this.skipWhitespace(i + 1);
    return key;
  }

  private open(container: JsonObject | unknown[], array: boolean, at: number): void {
    const d = this.depth;
    if (d >= this.maxDepth) {
      this.fail('ERR_JSON_DEPTH', `nesting deeper than ${this.maxDepth} levels`, at);
    }
    this.containers[d] = container;
    this.isArray[d] = array;
    this.starts[d] = at;
    this.depth = d + 1;
  }

  // ---- grammar ----------------------------------------------------------

  /** Checks the start of the input; then `run()` parses. */
  begin(): void {
    const text = this.text;
    const len = this.len;
    if (len > 0 && text.charCodeAt(0) === BOM) {
      this.syntax('byte order mark (U+FEFF) is not allowed', 0);
    }
    this.pos = this.skipWhitespace(0);
    if (this.pos >= len) {
      this.syntax(len === 0 ? 'empty input, expected a JSON value' : 'no JSON value, input is only whitespace', this.pos);
    }
  }

  /** When set, `run()` returns PAUSED after this time (performance.now()) at a value boundary. */
  deadline = Infinity;

  /**
   * Parses from `pos` to the end, or until the deadline passes; all state
   * lives in the parser, so a paused run resumes where it stopped.
   */
  run(): unknown {
    const text = this.text;
    const len = this.len;
    // Elements are reported at depth 2: the top-level object holds the array, the array them.
    const elementDepth = this.elements ? 2 : -1;
    let sinceClock = 0;
    let value: unknown;
    let valueStart = 0;
    for (;;) {
      // ---- a value starts at this.pos (whitespace already skipped) ----
      const at = this.pos;
      valueStart = at;
      const c = text.charCodeAt(at);
      switch (c) {
        case OPEN_BRACE: {
          const obj: JsonObject = {};
          this.pos = this.skipWhitespace(at + 1);
          if (text.charCodeAt(this.pos) === CLOSE_BRACE) {
            if (this.depth >= this.maxDepth) this.open(obj, false, at);
            this.pos++;
            value = obj;
            break;
          }
          this.open(obj, false, at);
          this.keys[this.depth - 1] = this.parseKey(obj);
          continue;
        }
        case OPEN_BRACKET: {
          const arr: unknown[] = [];
          this.pos = this.skipWhitespace(at + 1);
          if (text.charCodeAt(this.pos) === CLOSE_BRACKET) {
            if (this.depth >= this.maxDepth) this.open(arr, true, at);
            this.pos++;
            value = arr;
            break;
          }
          this.open(arr, true, at);
          continue;
        }
        case QUOTE: {
          const quoteAt = this.pos;
          value = this.parseString();
          // Validated above: the literal, escapes and all, decodes to the same string, in memory of its own.
          if (this.detached && (value as string).length >= SHORTEST_VIEW) value = JSON.parse(this.text.slice(quoteAt, this.pos));
          break;
        }
        case LOWER_T:
          value = this.parseLiteral('true', true);
          break;
        case LOWER_F:
          value = this.parseLiteral('false', false);
          break;
        case LOWER_N:
          value = this.parseLiteral('null', null);
          break;
        default:
          if (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) {
            value = this.parseNumber();
            break;
          }
          if (c === CLOSE_BRACKET && this.depth > 0 && this.isArray[this.depth - 1]) {
            // `[1,]` arrives here after the comma (`{"a":1,}` is caught in the key step).
            const prev = this.previousNonWhitespace(at);
            if (prev >= 0 && text.charCodeAt(prev) === COMMA) {
              return this.syntax(`trailing comma before ${JSON.stringify(text.charAt(at))}`, prev);
            }
          }
          return this.unexpected(at, at >= len ? ', expected a JSON value' : '');
      }

      // ---- a complete value: attach it and consume separators/closers ----
      for (;;) {
        const d = this.depth;
        if (d === 0) {
          const end = this.skipWhitespace(this.pos);
          if (end < len) return this.unexpected(end, ' after the JSON value');
          return value;
        }
        const top = d - 1;
        const container = this.containers[top] as JsonObject | unknown[];
        const array = this.isArray[top] as boolean;
        if (d === elementDepth && array && !this.isArray[0]) {
          const reporter = this.elements!.get(this.keys[0] as string);
          if (reporter) value = reporter.element(value, text.slice(valueStart, this.pos));
        }
        if (array) (container as unknown[]).push(value);
        else {
          const key = this.keys[top] as string;
          // An assignment to "__proto__" would set the prototype; define it as data instead.
          if (key === '__proto__') Object.defineProperty(container, key, { value, enumerable: true, writable: true, configurable: true });
          else (container as JsonObject)[key] = value;
        }

        const i = this.skipWhitespace(this.pos);
        const s = text.charCodeAt(i);
        if (s === COMMA) {
          this.pos = this.skipWhitespace(i + 1);
          if (!array) {
            const k = text.charCodeAt(this.pos);
            if (k === CLOSE_BRACE) return this.syntax('trailing comma before "}"', i);
            this.keys[top] = this.parseKey(container as JsonObject);
          }
          // Between two values the state is complete: a safe place to pause.
          if (++sinceClock >= 1024) {
            sinceClock = 0;
            if (performance.now() >= this.deadline) return PAUSED;
          }
          break; // parse the next value
        }
        if (s === (array ? CLOSE_BRACKET : CLOSE_BRACE)) {
          this.pos = i + 1;
          this.depth = top;
          value = container;
          valueStart = this.starts[top] as number;
          continue;
        }
        return this.unexpected(i, array ? ', expected "," or "]"' : ', expected "," or "}"');
      }
    }
  }

  private previousNonWhitespace(i: number): number {
    const text = this.text;
    for (let k = i - 1; k >= 0; k--) {
      const c = text.charCodeAt(k);
      if (!(c === SPACE || c === LF || c === CR || c === TAB)) return k;
    }
    return -1;
  }
}

/**
 * Parses `text` as exactly one RFC 8259 JSON value. A `__proto__` key is an
 * ordinary own property. Throws {@link StrictJsonError} on syntax errors, duplicate keys
 * (compared after escape decoding) and nesting deeper than `maxDepth`.
 */
export function parseStrictJson(text: string, options?: StrictJsonOptions): unknown {
  if (typeof text !== 'string') {
    throw new TypeError(`parseStrictJson expects a string, got ${text === null ? 'null' : typeof text}`);
  }
  const maxDepth = checkedMaxDepth(options?.maxDepth);
  const parser = new Parser(text, maxDepth, options?.elements, options?.detached);
  parser.begin();
  return parser.run();
}

/**
 * The same parse, in slices of about `sliceMs` with the event loop free in
 * between: for whitelist files large enough that one synchronous parse would
 * stall requests.
 */
export async function parseStrictJsonSliced(text: string, options: StrictJsonOptions & { sliceMs: number }): Promise<unknown> {
  const parser = new Parser(text, checkedMaxDepth(options.maxDepth), options.elements, options.detached);
  parser.begin();
  for (;;) {
    parser.deadline = performance.now() + options.sliceMs;
    const result = parser.run();
    if (result !== PAUSED) return result;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Follows own properties of (non-array) objects segment by segment.
 * Arrays are not indexed; anything that is not a plain object on the way
 * means not found. An empty path finds `value` itself.
 */
export function getPath(value: unknown, path: readonly string[]): { found: false } | { found: true; value: unknown } {
  let current = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return { found: false };
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return { found: false };
    current = (current as Record<string, unknown>)[segment];
  }
  return { found: true, value: current };
}

/**
 * Splits `"meta.tenant.oin"` into `["meta", "tenant", "oin"]`. Throws when
 * the path or any segment is empty (`""`, `".a"`, `"a..b"`, `"a."`).
 */
export function splitDottedPath(path: string): string[] {
  if (typeof path !== 'string') {
    throw new TypeError(`dotted path must be a string, got ${path === null ? 'null' : typeof path}`);
  }
  const segments = path.split('.');
  if (segments.some((s) => s === '')) {
    throw new Error(`invalid dotted path ${JSON.stringify(path)}: empty segment`);
  }
  return segments;
}
