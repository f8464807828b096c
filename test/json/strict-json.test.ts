import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import {
  parseStrictJsonSliced,
  StrictJsonError,
  getPath,
  parseStrictJson,
  splitDottedPath,
  type StrictJsonOptions,
} from '../../src/json/strict-json.ts';

/** Parses and returns the thrown StrictJsonError (fails if nothing or something else is thrown). */
function failure(text: string, options?: StrictJsonOptions): StrictJsonError {
  try {
    parseStrictJson(text, options);
  } catch (err) {
    expect(err, `error thrown for ${JSON.stringify(text.slice(0, 60))}`).to.be.instanceOf(StrictJsonError);
    return err as StrictJsonError;
  }
  throw new Error(`expected ${JSON.stringify(text.slice(0, 60))} to be refused`);
}

/** Recursively converts null-prototype objects into plain objects for deep equality. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      Object.defineProperty(out, key, {
        value: plain((value as Record<string, unknown>)[key]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

function expectSameAsJsonParse(text: string): void {
  const ours = parseStrictJson(text);
  const theirs: unknown = JSON.parse(text);
  expect(plain(ours)).to.deep.equal(theirs);
  expect(JSON.stringify(ours)).to.equal(JSON.stringify(theirs));
}

describe('parseStrictJson', () => {
  describe('valid documents', () => {
    const documents: Record<string, string> = {
      'an empty object': '{}',
      'an empty array': '[]',
      'an object with mixed values': '{"a":1,"b":"two","c":true,"d":false,"e":null,"f":[],"g":{}}',
      'nested arrays and objects': '[[1,[2,[3]]],{"x":{"y":{"z":[{"w":0}]}}}]',
      'a top-level string': '"hello"',
      'a top-level number': '42',
      'a top-level true': 'true',
      'a top-level false': 'false',
      'a top-level null': 'null',
      'numbers of every shape': '[0,-0,1,-1,10,123456789,0.5,-0.25,1e3,1E3,1e+3,1e-3,-1.5E-7,9007199254740993,12345678901234567890123,1.7976931348623157e308,5e-324]',
      'whitespace of every allowed kind': ' \t\r\n{ "a" :\t[ 1 ,\r\n 2 ] }\n\t ',
      'every string escape': '"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\u20AC \\ud83d\\ude00"',
      'non-ASCII characters written raw': '{"naïve":"日本語 😀 €"}',
      'a string with DEL and U+2028 raw': '"a\u007fb\u2028c"',
      'escapes in keys': '{"a\\nb":1,"\\u0000":2}',
      'keys that only differ in case': '{"oin":1,"OIN":2,"Oin":3}',
      'the same key in sibling objects': '[{"oin":"A"},{"oin":"B"}]',
      'the same key at different levels': '{"oin":"A","meta":{"oin":"B"}}',
      // Past the first characters a string is scanned another way: the same rules must hold there.
      'long strings with escapes, quotes and raw non-ASCII far in': `{"${'k'.repeat(40)}":"${'x'.repeat(100)}\\n\\u00e9\\"${'é'.repeat(50)}\\\\😀${'y'.repeat(30)}","b":"${'z'.repeat(300)}"}`,
      'strings of 23, 24 and 25 characters, around where the scan changes': `["${'a'.repeat(24)}","${'a'.repeat(25)}","${'a'.repeat(23)}"]`,
    };
    for (const [name, text] of Object.entries(documents)) {
      it(`parses ${name} exactly like JSON.parse`, () => {
        expectSameAsJsonParse(text);
      });
    }

    it('keeps -0 as negative zero like JSON.parse', () => {
      expect(Object.is(parseStrictJson('-0'), -0)).to.equal(true);
      expect(Object.is(parseStrictJson('0'), 0)).to.equal(true);
    });

    it('converts integers beyond 2^53 with Number() like JSON.parse', () => {
      expect(parseStrictJson('9007199254740993')).to.equal(JSON.parse('9007199254740993'));
      expect(parseStrictJson('-123456789012345678901234567890')).to.equal(-123456789012345678901234567890);
    });

    it('turns a number too big for a double (1e400) into Infinity like JSON.parse', () => {
      expect(parseStrictJson('1e400')).to.equal(Infinity);
      expect(parseStrictJson('-1e400')).to.equal(-Infinity);
      expect(parseStrictJson('[1e400]')).to.deep.equal(JSON.parse('[1e400]'));
    });

    it('accepts lone surrogate escapes like JSON.parse does', () => {
      for (const text of ['"\\ud800"', '"\\udc00"', '"x\\ud83dy"', '"\\ude00\\ud83d"']) {
        const ours = parseStrictJson(text);
        expect(ours).to.equal(JSON.parse(text));
        expect((ours as string).length).to.be.greaterThan(0);
      }
      expect((parseStrictJson('"\\ud800"') as string).charCodeAt(0)).to.equal(0xd800);
    });

    it('decodes \\u0000 and keeps it in the string', () => {
      expect(parseStrictJson('"a\\u0000b"')).to.equal('a\u0000b');
    });

    it('creates plain objects whose prototype was not chosen by the input, nested ones too', () => {
      const value = parseStrictJson('{"a":{"b":[{"c":1}]}}') as Record<string, any>;
      expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
      expect(Object.getPrototypeOf(value.a.b[0])).to.equal(Object.prototype);
      expect(Array.isArray(value.a.b)).to.equal(true);
    });

    it('does not take a key inherited from Object.prototype for a duplicate', () => {
      const value = parseStrictJson('{"toString":1,"constructor":2,"hasOwnProperty":3}') as Record<string, unknown>;
      expect(value['toString']).to.equal(1);
      expect(value['hasOwnProperty']).to.equal(3);
    });

    it('keeps a "__proto__" key as an ordinary own property and pollutes nothing', () => {
      const value = parseStrictJson('{"__proto__":{"polluted":true},"a":{"__proto__":{"polluted":1}}}') as Record<
        string,
        unknown
      >;
      expect(Object.prototype.hasOwnProperty.call(value, '__proto__')).to.equal(true);
      expect(Object.getPrototypeOf(value), 'the key did not set the prototype').to.equal(Object.prototype);
      expect(Object.getPrototypeOf(value['a'])).to.equal(Object.prototype);
      expect((value['__proto__'] as Record<string, unknown>)['polluted']).to.equal(true);
      expect(Object.keys(value)).to.deep.equal(['__proto__', 'a']);
      expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
      expect((Object.prototype as unknown as Record<string, unknown>)['polluted']).to.equal(undefined);
    });

    it('keeps "constructor" and "hasOwnProperty" keys as ordinary own data', () => {
      const value = parseStrictJson('{"constructor":{"prototype":{"polluted":1}},"hasOwnProperty":5}') as Record<
        string,
        unknown
      >;
      expect(value['hasOwnProperty']).to.equal(5);
      expect(Object.keys(value)).to.deep.equal(['constructor', 'hasOwnProperty']);
      expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
      expect(getPath(value, ['constructor', 'prototype', 'polluted'])).to.deep.equal({ found: true, value: 1 });
    });

    it('round-trips a generated ~1 MiB document equal to JSON.parse', () => {
      const tenants: unknown[] = [];
      let size = 0;
      for (let i = 0; size < 1024 * 1024; i++) {
        const tenant = {
          oin: `0000000${100000000000 + i}`,
          name: `Tenant ${i} "quoted" \\ é 😀\n`,
          enabled: i % 3 !== 0,
          cidrs: [`10.${i % 256}.0.0/16`, '2001:db8::/32'],
          weight: i * 1.25 - 7,
          big: i * 1e20,
          tiny: i / 3,
          keys: i % 5 === 0 ? [] : [{ kid: `k${i}`, alg: 'HS256', notBefore: null }],
        };
        tenants.push(tenant);
        size += JSON.stringify(tenant).length;
      }
      const text = JSON.stringify({ tenants });
      expect(text.length).to.be.greaterThan(1024 * 1024);
      const ours = parseStrictJson(text);
      expect(JSON.stringify(ours)).to.equal(JSON.stringify(JSON.parse(text)));
      expect(plain(ours)).to.deep.equal({ tenants });
    });
  });

  describe('syntax errors', () => {
    const refused: Record<string, string> = {
      'empty input': '',
      'whitespace-only input': ' \n\t\r ',
      'a leading byte order mark': '\uFEFF{}',
      'a byte order mark as whitespace inside': '[1,\uFEFF2]',
      'non-JSON whitespace (vertical tab)': '\u000b1',
      'non-JSON whitespace (no-break space)': '\u00a01',
      'two top-level values': '1 2',
      'trailing data after an object': '{} x',
      'a trailing comma in an array': '[1,2,]',
      'a trailing comma in an object': '{"a":1,}',
      'a leading comma in an array': '[,1]',
      'an empty element': '[1,,2]',
      'a missing comma': '[1 2]',
      'a missing colon': '{"a" 1}',
      'a missing value after the colon': '{"a":}',
      'a single-quoted string': "'a'",
      'a single-quoted key': "{'a':1}",
      'an unquoted key': '{a:1}',
      'a number as key': '{1:1}',
      'a line comment': '[1] // c',
      'a block comment': '/* c */ [1]',
      'an unterminated array': '[1,2',
      'an unterminated object': '{"a":1',
      'an unterminated string': '"abc',
      'a string ending in a backslash': '"abc\\',
      'a mismatched bracket': '[1}',
      'a mismatched brace': '{"a":1]',
      'a stray closing bracket': ']',
      'a raw newline in a string': '"a\nb"',
      'a raw tab in a string': '"a\tb"',
      'a raw NUL in a string': '"a\u0000b"',
      'a raw U+001F in a string': '"a\u001fb"',
      'a raw control character in a key': '{"a\u0001":1}',
      'a raw newline far into a long string': `"${'a'.repeat(100)}\n${'b'.repeat(10)}"`,
      'a raw NUL far into a long key': `{"${'a'.repeat(60)}\u0000":1}`,
      'an unterminated long string': `"${'a'.repeat(100)}`,
      'a long string ending in a backslash': `"${'a'.repeat(100)}\\`,
      'an unknown escape far into a long string': `"${'a'.repeat(100)}\\x41"`,
      'an unknown escape \\x': '"\\x41"',
      'an unknown escape \\a': '"\\a"',
      'an uppercase \\U escape': '"\\U0041"',
      'a short \\u escape': '"\\u12"',
      'a \\u escape with a non-hex digit': '"\\u12g4"',
      'an escaped single quote': '"\\\'"',
      'a leading zero': '01',
      'a negative leading zero': '-01',
      'a leading zero with a fraction after': '00.5',
      'a leading plus sign': '+1',
      'a leading decimal point': '.5',
      'a trailing decimal point': '1.',
      'a decimal point before an exponent': '1.e5',
      'an exponent without digits': '1e',
      'an exponent with only a sign': '1e+',
      'a bare minus': '-',
      'a minus before a letter': '-a',
      'a hex number': '0x1F',
      'NaN': 'NaN',
      'Infinity': 'Infinity',
      '-Infinity': '-Infinity',
      'a truncated literal': 'tru',
      'a misspelled literal': 'nul1',
      'an uppercase literal': 'True',
      'a literal with trailing letters': 'truex',
      'undefined': 'undefined',
    };
    for (const [name, text] of Object.entries(refused)) {
      it(`refuses ${name} with ERR_JSON_SYNTAX`, () => {
        expect(() => JSON.parse(text), `sanity: JSON.parse also refuses ${name}`).to.throw(SyntaxError);
        const err = failure(text);
        expect(err.code).to.equal('ERR_JSON_SYNTAX');
        expect(err.message).to.match(/ at line \d+ column \d+/);
      });
    }

    it('names the unexpected character and its place', () => {
      const err = failure('{\n  "a": [1,\n    }\n}');
      expect(err.code).to.equal('ERR_JSON_SYNTAX');
      expect(err.message).to.equal('unexpected character "}" at line 3 column 5');
      expect(err.line).to.equal(3);
      expect(err.column).to.equal(5);
      expect(err.position).to.equal(17);
    });

    it('reports line and column correctly across LF, CRLF and CR line breaks', () => {
      const text = '{\n"a":1,\r\n"b":2,\r"c":\t\tx}';
      const err = failure(text);
      expect(err.position).to.equal(text.indexOf('x'));
      expect(err.line).to.equal(4);
      expect(err.column).to.equal(7);
      expect(err.message).to.contain('"x"').and.to.contain('at line 4 column 7');
    });

    it('reports a trailing comma at the comma', () => {
      const err = failure('[1,\n 2 ,\n]');
      expect(err.message).to.match(/^trailing comma/);
      expect([err.line, err.column]).to.deep.equal([2, 4]);
    });

    it('reports a leading zero and a bad escape by name', () => {
      expect(failure('[1, 012]').message).to.equal('leading zero in number at line 1 column 5');
      expect(failure('{"a":"b\\qc"}').message).to.equal('invalid escape "\\\\q" in string at line 1 column 8');
      expect(failure('"ab\u0007"').message).to.equal('unescaped control character U+0007 in string at line 1 column 4');
    });

    it('reports an unexpected end of input at the end', () => {
      const err = failure('{"a":[1,2');
      expect(err.message).to.match(/^unexpected end of input/);
      expect(err.position).to.equal(9);
      expect(err.column).to.equal(10);
    });

    it('reports a byte order mark at position 0', () => {
      const err = failure('\uFEFF"x"');
      expect(err.position).to.equal(0);
      expect(err.message).to.contain('U+FEFF');
    });

    it('is an Error with the StrictJsonError name', () => {
      const err = failure('[');
      expect(err).to.be.instanceOf(Error);
      expect(err.name).to.equal('StrictJsonError');
    });

    it('refuses a non-string argument with a TypeError', () => {
      expect(() => parseStrictJson(undefined as unknown as string)).to.throw(TypeError);
      expect(() => parseStrictJson(Buffer.from('{}') as unknown as string)).to.throw(TypeError);
    });
  });

  describe('duplicate keys', () => {
    it('refuses a duplicate key at the top level', () => {
      const err = failure('{"oin":"A","oin":"B"}');
      expect(err.code).to.equal('ERR_JSON_DUPLICATE_KEY');
      expect(err.message).to.equal('duplicate key "oin" at line 1 column 12 (path $)');
      expect(err.position).to.equal(11);
    });

    it('refuses a duplicate key in a nested object and names the path', () => {
      const err = failure('{"tenants":[{"oin":"A"},{"oin":"A","cidrs":[],"oin":"B"}]}');
      expect(err.code).to.equal('ERR_JSON_DUPLICATE_KEY');
      expect(err.message).to.equal('duplicate key "oin" at line 1 column 47 (path $.tenants[1])');
    });

    it('refuses a duplicate key deep inside objects and arrays', () => {
      const err = failure('{"a":{"b c":[[0,{"x":1,"x":2}]]}}');
      expect(err.code).to.equal('ERR_JSON_DUPLICATE_KEY');
      expect(err.message).to.contain('(path $.a["b c"][0][1])');
    });

    it('refuses a duplicate key written with a unicode escape', () => {
      const err = failure('{"oin":"A","o\\u0069n":"B"}');
      expect(err.code).to.equal('ERR_JSON_DUPLICATE_KEY');
      expect(err.message).to.match(/^duplicate key "oin" /);
    });

    it('refuses keys that are duplicates only after escape decoding', () => {
      const pairs = [
        ['"\\u006f\\u0069\\u006e"', '"oin"'],
        ['"a\\/b"', '"a/b"'],
        ['"\\"q"', '"\\u0022q"'],
        ['"😀"', '"\\ud83d\\ude00"'],
        ['"tab\\t"', '"tab\\u0009"'],
      ];
      for (const [first, second] of pairs) {
        const text = `{${first}:1,${second}:2}`;
        expect(Object.keys(JSON.parse(text) as object)).to.have.length(1);
        expect(failure(text).code, text).to.equal('ERR_JSON_DUPLICATE_KEY');
      }
    });

    it('refuses a duplicate "__proto__" key', () => {
      expect(failure('{"__proto__":1,"__proto__":2}').code).to.equal('ERR_JSON_DUPLICATE_KEY');
    });

    it('refuses a duplicate even when the values are identical', () => {
      expect(failure('{"a":1,"b":2,"a":1}').code).to.equal('ERR_JSON_DUPLICATE_KEY');
    });

    it('truncates a very long duplicate key in the message', () => {
      const key = 'k'.repeat(10000);
      const err = failure(`{"${key}":1,"${key}":2}`);
      expect(err.code).to.equal('ERR_JSON_DUPLICATE_KEY');
      expect(err.message.length).to.be.lessThan(200);
    });
  });

  describe('nesting depth', () => {
    const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const objects = (n: number) => '{"a":'.repeat(n - 1) + '{}' + '}'.repeat(n - 1);

    it('accepts 64 nested arrays with the default limit', () => {
      expect(JSON.stringify(parseStrictJson(arrays(64)))).to.equal(arrays(64));
    });

    it('refuses 65 nested arrays with ERR_JSON_DEPTH', () => {
      const err = failure(arrays(65));
      expect(err.code).to.equal('ERR_JSON_DEPTH');
      expect(err.message).to.equal('nesting deeper than 64 levels at line 1 column 65');
      expect(err.position).to.equal(64);
    });

    it('counts objects and arrays alike, including empty ones', () => {
      expect(JSON.stringify(parseStrictJson(objects(64)))).to.equal(objects(64));
      expect(failure(objects(65)).code).to.equal('ERR_JSON_DEPTH');
      // 32 arrays alternating with 32 objects: 64 levels.
      const mixed64 = '[{"a":'.repeat(32) + '1' + '}]'.repeat(32);
      expect(JSON.stringify(parseStrictJson(mixed64))).to.equal(mixed64);
      expect(failure(`[${mixed64}]`).code).to.equal('ERR_JSON_DEPTH');
    });

    it('only counts open containers, not siblings', () => {
      const wide = `[${Array.from({ length: 1000 }, () => arrays(64)).join(',')}]`;
      expect(failure(wide).code).to.equal('ERR_JSON_DEPTH');
      const wideOk = `[${Array.from({ length: 1000 }, () => arrays(63)).join(',')}]`;
      expect((parseStrictJson(wideOk) as unknown[]).length).to.equal(1000);
    });

    it('honours a custom maxDepth', () => {
      expect(parseStrictJson('[[[1]]]', { maxDepth: 3 })).to.deep.equal([[[1]]]);
      expect(failure('[[[[1]]]]', { maxDepth: 3 }).message).to.match(/^nesting deeper than 3 levels/);
      expect(failure('{"a":{}}', { maxDepth: 1 }).code).to.equal('ERR_JSON_DEPTH');
      expect(parseStrictJson(arrays(200), { maxDepth: 200 })).to.be.an('array');
    });

    it('with maxDepth 0 accepts scalars and refuses any container', () => {
      expect(parseStrictJson('"x"', { maxDepth: 0 })).to.equal('x');
      expect(failure('[]', { maxDepth: 0 }).code).to.equal('ERR_JSON_DEPTH');
      expect(failure('{}', { maxDepth: 0 }).code).to.equal('ERR_JSON_DEPTH');
    });

    it('refuses an invalid maxDepth with a RangeError', () => {
      for (const maxDepth of [-1, 1.5, NaN, Infinity]) {
        expect(() => parseStrictJson('1', { maxDepth })).to.throw(RangeError);
      }
    });

    it('refuses 100000 "[" with ERR_JSON_DEPTH, not a RangeError', () => {
      const err = failure('['.repeat(100000));
      expect(err.code).to.equal('ERR_JSON_DEPTH');
      expect(err.position).to.equal(64);
    });

    it('parses 100000 nested arrays without overflowing the stack when the limit allows it', () => {
      const value = parseStrictJson(arrays(100000), { maxDepth: 100000 });
      let depth = 0;
      for (let v = value; Array.isArray(v); v = v[0]) depth++;
      expect(depth).to.equal(100000);
    });
  });
  describe('detached strings', () => {
    // A real collection, to see what a kept string keeps alive.
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;

    /** Heap bytes still held after parsing three 4 MB texts and keeping one 20-character value of each. */
    function retainedBy(options: StrictJsonOptions): number {
      const parseOne = (n: number): string => {
        const text = JSON.stringify({ keep: `${n}`.padStart(20, 'x'), pad: Array.from({ length: 150_000 }, (_, i) => `padding number ${i}`) });
        return (parseStrictJson(text, options) as { keep: string }).keep;
      };
      collect();
      const before = process.memoryUsage().heapUsed;
      const kept = [parseOne(1), parseOne(2), parseOne(3)];
      collect();
      const retained = process.memoryUsage().heapUsed - before;
      expect(kept).to.deep.equal(['xxxxxxxxxxxxxxxxxxx1', 'xxxxxxxxxxxxxxxxxxx2', 'xxxxxxxxxxxxxxxxxxx3']);
      return retained;
    }

    it('keeps no text alive through a kept value when detached', () => {
      // The control: shared, each kept value holds its whole text (some 3 MB).
      expect(retainedBy({})).to.be.greaterThan(6_000_000);
      expect(retainedBy({ detached: true })).to.be.lessThan(1_000_000);
    });

    it('gives the same values detached, escapes and long strings included', () => {
      const text = JSON.stringify({ a: 'plain string of some length', b: 'esc\\aped \u00e9 \n "quoted" long enough', c: ['\ud800 lone', 'short'], d: { e: 'x'.repeat(5000) } });
      expect(parseStrictJson(text, { detached: true })).to.deep.equal(JSON.parse(text));
      expect(parseStrictJson(text, { detached: true })).to.deep.equal(parseStrictJson(text));
    });
  });
});

describe('parseStrictJson told of the elements of a top-level array', () => {
  /** Parses with an `elements` option that records each element and its text and keeps `kept(value)` in its place. */
  function reported(text: string, key = 'tenants', kept: (value: unknown) => unknown = () => null) {
    const seen: Array<{ value: unknown; text: string }> = [];
    const value = parseStrictJson(text, { elements: { key, element: (element, source) => (seen.push({ value: element, text: source }), kept(element)) } });
    return { value, seen };
  }

  it('reports each element of the named array of the top-level object with its text exactly as written, in order', () => {
    const elements = ['{ "oin" : "A", "n" : [1, {"x": -0}] }', '"\\u0041"', '1e400', '[ ]', '{}', 'null', '-0.5e-3', '"caf\u00e9"'];
    const text = `{"$schema":"s","tenants":[\n ${elements.join(' ,\r\n\t')} \n],"other":[1]}`;
    const { value, seen } = reported(text);
    expect(seen.map((s) => s.text)).to.deep.equal(elements);
    expect(seen.map((s) => s.value)).to.deep.equal(elements.map((e) => JSON.parse(e)));
    expect(Object.is((seen[0]!.value as { n: [number, { x: number }] }).n[1].x, -0)).to.equal(true);
    // What the callback returns takes each element's place; everything else is as parsed.
    expect(value).to.deep.equal({ $schema: 's', tenants: elements.map(() => null), other: [1] });
    expect(reported(text, 'tenants', (element) => element).value).to.deep.equal(parseStrictJson(text));
  });

  it('reports nothing of another key, of a nested array of that name, of a top-level array or of a non-array', () => {
    for (const text of ['{"other":[1,2]}', '{"a":{"tenants":[1]}}', '[[1],{"tenants":[1]}]', '{"tenants":{"a":[1]}}', '{"tenants":"x"}', '{"tenants":[]}']) {
      const { value, seen } = reported(text);
      expect(seen, text).to.deep.equal([]);
      expect(value, text).to.deep.equal(parseStrictJson(text));
    }
  });

  it('refuses exactly what the parse without it refuses, with the same code, message and place', () => {
    const refused = [
      '{"tenants":[{"oin":"A"},{"oin":"A","cidrs":[],"oin":"B"}]}',
      '{"tenants":[{"oin":"A","o\\u0069n":"B"}]}',
      '{"tenants":[1],"tenants":[2]}',
      `{"tenants":[${'['.repeat(70)}${']'.repeat(70)}]}`,
      '{"tenants":[{"oin":"A"},]}',
      '{"tenants":[{"oin":"A"}',
      '{"tenants":[{"oin":"A"}]} x',
      '{"tenants":[{"a":1,"a":2}] , "b":[{"c":[{"d":1,"d":1}]}]}',
    ];
    for (const text of refused) {
      const without = failure(text);
      const withElements = failure(text, { elements: { key: 'tenants', element: () => null } });
      expect([withElements.code, withElements.message, withElements.position], text).to.deep.equal([without.code, without.message, without.position]);
    }
  });

  it('reports the same elements when the parse is sliced', async () => {
    const elements = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ oin: String(i), cidrs: [`10.0.${i >> 8}.${i & 255}/32`] }));
    const text = `{"tenants":[${elements.join(',')}]}`;
    const seen: string[] = [];
    await parseStrictJsonSliced(text, { sliceMs: 0, elements: { key: 'tenants', element: (_, source) => seen.push(source) } });
    expect(seen).to.deep.equal(elements);
  });
});

describe('getPath', () => {
  const doc = parseStrictJson('{"oin":"A","meta":{"tenant":{"oin":"B","n":null}},"list":[{"oin":"C"}],"s":"str"}');

  it('finds a top-level property', () => {
    expect(getPath(doc, ['oin'])).to.deep.equal({ found: true, value: 'A' });
  });

  it('follows nested objects segment by segment', () => {
    expect(getPath(doc, ['meta', 'tenant', 'oin'])).to.deep.equal({ found: true, value: 'B' });
  });

  it('reports a present null value as found', () => {
    expect(getPath(doc, ['meta', 'tenant', 'n'])).to.deep.equal({ found: true, value: null });
  });

  it('returns the value itself for an empty path', () => {
    expect(getPath(doc, [])).to.deep.equal({ found: true, value: doc });
  });

  it('reports a missing property as not found', () => {
    expect(getPath(doc, ['nope'])).to.deep.equal({ found: false });
    expect(getPath(doc, ['meta', 'nope', 'oin'])).to.deep.equal({ found: false });
  });

  it('does not index arrays', () => {
    expect(getPath(doc, ['list', '0', 'oin'])).to.deep.equal({ found: false });
    expect(getPath(doc, ['list', 'length'])).to.deep.equal({ found: false });
  });

  it('treats a scalar or null on the way as not found', () => {
    expect(getPath(doc, ['s', 'length'])).to.deep.equal({ found: false });
    expect(getPath(doc, ['meta', 'tenant', 'n', 'x'])).to.deep.equal({ found: false });
    expect(getPath(null, ['a'])).to.deep.equal({ found: false });
    expect(getPath('abc', ['length'])).to.deep.equal({ found: false });
  });

  it('ignores inherited properties on ordinary objects', () => {
    expect(getPath({ a: 1 }, ['toString'])).to.deep.equal({ found: false });
    expect(getPath({ a: 1 }, ['__proto__'])).to.deep.equal({ found: false });
    expect(getPath(doc, ['constructor'])).to.deep.equal({ found: false });
  });

  it('finds a "__proto__" own property of a parsed document', () => {
    const value = parseStrictJson('{"__proto__":{"oin":"X"}}');
    expect(getPath(value, ['__proto__', 'oin'])).to.deep.equal({ found: true, value: 'X' });
  });
});

describe('splitDottedPath', () => {
  it('returns a single segment for a plain name', () => {
    expect(splitDottedPath('oin')).to.deep.equal(['oin']);
  });

  it('splits a dotted path into its segments', () => {
    expect(splitDottedPath('meta.tenant.oin')).to.deep.equal(['meta', 'tenant', 'oin']);
  });

  it('keeps other characters inside segments', () => {
    expect(splitDottedPath('a-b.c_d.$e f')).to.deep.equal(['a-b', 'c_d', '$e f']);
  });

  for (const bad of ['', '.a', 'a.', 'a..b', '.']) {
    it(`throws an error naming the input for ${JSON.stringify(bad)}`, () => {
      expect(() => splitDottedPath(bad))
        .to.throw(Error)
        .with.property('message')
        .that.contains(JSON.stringify(bad));
    });
  }

  it('feeds getPath', () => {
    const doc = parseStrictJson('{"meta":{"tenant":{"oin":"B"}}}');
    expect(getPath(doc, splitDottedPath('meta.tenant.oin'))).to.deep.equal({ found: true, value: 'B' });
  });
});


describe('parseStrictJsonSliced', () => {
  const big = JSON.stringify({ tenants: Array.from({ length: 20_000 }, (_, i) => ({ oin: String(i).padStart(20, '0'), cidrs: ['10.0.0.0/8'] })) });

  it('gives the same value as the synchronous parse', async () => {
    const sliced = await parseStrictJsonSliced(big, { sliceMs: 1 });
    expect(JSON.stringify(sliced)).to.equal(JSON.stringify(JSON.parse(big)));
  });

  it('lets the event loop run between slices of a large document', async () => {
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    try {
      await parseStrictJsonSliced(big, { sliceMs: 0 });
    } finally {
      clearInterval(timer);
    }
    expect(turns).to.be.greaterThan(0);
  });

  it('still refuses a duplicate key found after a pause', async () => {
    try {
      await parseStrictJsonSliced(big.slice(0, -1) + ',"tenants":[]}', { sliceMs: 0 });
      expect.fail('should have thrown');
    } catch (error) {
      expect((error as StrictJsonError).code).to.equal('ERR_JSON_DUPLICATE_KEY');
    }
  });
});
