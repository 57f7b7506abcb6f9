// transforms.passthrough in AssemblyScript: emits each input's payload on
// its subject. The smallest complete guest, and the module the per-language
// figures of docs/BENCHMARKS.md ("Guest languages") measure.
import { configText, inputPayload, emit, fail, OK } from "../switchyard";

export function sy_abi_version(): i32 {
  return 1;
}

export function sy_init(): i32 {
  const c = configText();
  if (c != "{}") return fail("config: passthrough takes no options, got " + c);
  return 0;
}

export function sy_transform(): i32 {
  const payload = inputPayload();
  if (payload == null) return fail("no input message");
  if (emit("", payload) != OK) return fail("emit refused"); // "": the input's subject
  return 0;
}
