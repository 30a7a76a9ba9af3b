// A verification aid, never part of a page (posterlite/browser.py's NO_RELAXED_SIMD; the
// driver injects it before any page script with `init_script`): this page's WebAssembly
// behaves as in a browser without relaxed SIMD (Safari today). Chromium 156's V8 has no
// switch for it (relaxed SIMD shipped, its --experimental-wasm-relaxed-simd flag is gone),
// so every module handed to the JS API is decoded here, and one that uses a relaxed-SIMD
// instruction (prefix 0xFD, opcodes 0x100-0x113) is refused as such a browser refuses it:
// `validate` false, `compile` / `instantiate` / `new Module` a CompileError. Every other
// module goes on to V8 untouched. An instruction this decoder does not know is an error,
// never a guess, so a module is never let through unread.
(() => {
  const WA = WebAssembly;
  const original = {
    validate: WA.validate,
    compile: WA.compile,
    instantiate: WA.instantiate,
    Module: WA.Module,
  };

  function bytesOf(source) {
    const shared = typeof SharedArrayBuffer === "function" && source instanceof SharedArrayBuffer;
    if (source instanceof ArrayBuffer || shared) return new Uint8Array(source);
    if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    throw new TypeError("no_relaxed_simd.js: not a BufferSource");
  }

  // True when any function body uses a relaxed-SIMD instruction.
  function usesRelaxedSimd(source) {
    const b = bytesOf(source);
    let p = 8;
    const u = () => {
      let value = 0;
      let scale = 1;
      let byte;
      do {
        byte = b[p++];
        value += (byte & 0x7f) * scale;
        scale *= 128;
      } while (byte & 0x80);
      return value;
    };
    const skip = () => {
      while (b[p++] & 0x80);
    };
    const valtype = () => {
      const t = b[p++];
      if (t === 0x63 || t === 0x64) skip(); // (ref null? heaptype)
    };
    const blocktype = () => {
      if (b[p] === 0x63 || b[p] === 0x64) {
        p++;
        skip();
      } else skip(); // 0x40, a one-byte value type or a type index (LEB)
    };
    const memarg = () => {
      const align = u();
      if (align & 0x40) skip(); // multi-memory: memory index
      skip(); // offset
    };
    const fail = (what) => {
      throw new Error(`no_relaxed_simd.js: unknown ${what} at byte ${p}`);
    };
    const NONE = new Set([0x00, 0x01, 0x05, 0x0a, 0x0b, 0x0f, 0x19, 0x1a, 0x1b, 0xd1, 0xd3, 0xd4]);
    const ONE = new Set([0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x14, 0x15, 0x18, 0x20, 0x21, 0x22,
      0x23, 0x24, 0x25, 0x26, 0x3f, 0x40, 0x41, 0x42, 0xd0, 0xd2, 0xd5, 0xd6]);
    const FC = [0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1]; // LEB immediates per 0xFC op

    function instruction() {
      const op = b[p++];
      if (NONE.has(op) || (op >= 0x45 && op <= 0xc4)) return false;
      if (ONE.has(op)) return skip(), false;
      if (op === 0x02 || op === 0x03 || op === 0x04 || op === 0x06) return blocktype(), false;
      if (op >= 0x28 && op <= 0x3e) return memarg(), false;
      if (op === 0x43) return (p += 4), false;
      if (op === 0x44) return (p += 8), false;
      if (op === 0x11 || op === 0x13) return skip(), skip(), false;
      if (op === 0x0e) {
        for (let n = u(); n >= 0; n--) skip(); // the labels, then the default
        return false;
      }
      if (op === 0x1c) {
        for (let n = u(); n > 0; n--) valtype();
        return false;
      }
      if (op === 0x1f) { // try_table: block type, catch clauses
        blocktype();
        for (let n = u(); n > 0; n--) {
          const kind = b[p++];
          if (kind < 2) skip();
          skip();
        }
        return false;
      }
      if (op === 0xfc) {
        const sub = u();
        if (sub >= FC.length) fail(`0xFC ${sub}`);
        for (let n = FC[sub]; n > 0; n--) skip();
        return false;
      }
      if (op === 0xfe) { // atomics: fence has one zero byte, the rest a memarg
        const sub = u();
        if (sub === 0x03) p += 1;
        else memarg();
        return false;
      }
      if (op === 0xfd) {
        const sub = u();
        if (sub >= 0x100 && sub <= 0x113) return true; // relaxed SIMD
        if (sub > 0xff) fail(`0xFD ${sub}`);
        if (sub <= 11 || sub === 92 || sub === 93) memarg(); // loads, stores, load_zero
        else if (sub === 12 || sub === 13) p += 16; // v128.const, i8x16.shuffle
        else if (sub >= 21 && sub <= 34) p += 1; // extract / replace lane
        else if (sub >= 84 && sub <= 91) memarg(), (p += 1); // load / store lane
        return false;
      }
      fail(`opcode 0x${op.toString(16)}`);
    }

    while (p < b.length) {
      const id = b[p++];
      const size = u();
      const end = p + size;
      if (id === 10) { // code section
        for (let count = u(); count > 0; count--) {
          const length = u();
          const bodyEnd = p + length;
          for (let groups = u(); groups > 0; groups--) skip(), valtype();
          while (p < bodyEnd) if (instruction()) return true;
          if (p !== bodyEnd) fail("instruction layout (decoder out of step)");
        }
      }
      p = end;
    }
    return false;
  }

  const refuse = () =>
    new WA.CompileError("relaxed SIMD is not supported in this page (no_relaxed_simd.js)");
  const isModule = (source) => source instanceof original.Module;

  WA.validate = function validate(source, ...rest) {
    return usesRelaxedSimd(source) ? false : original.validate.call(WA, source, ...rest);
  };
  WA.compile = async function compile(source, ...rest) {
    if (usesRelaxedSimd(source)) throw refuse();
    return original.compile.call(WA, source, ...rest);
  };
  WA.instantiate = async function instantiate(source, ...rest) {
    if (!isModule(source) && usesRelaxedSimd(source)) throw refuse();
    return original.instantiate.call(WA, source, ...rest);
  };
  WA.compileStreaming = async function compileStreaming(source, ...rest) {
    return WA.compile(await (await source).arrayBuffer(), ...rest);
  };
  WA.instantiateStreaming = async function instantiateStreaming(source, ...rest) {
    return WA.instantiate(await (await source).arrayBuffer(), ...rest);
  };
  WA.Module = new Proxy(original.Module, {
    construct(target, args, newTarget) {
      if (usesRelaxedSimd(args[0])) throw refuse();
      return Reflect.construct(target, args, newTarget);
    },
  });
  self.plNoRelaxedSimd = usesRelaxedSimd; // for checks from the test
})();
