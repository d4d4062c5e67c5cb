// Checks tests/vectors/signed_requests.json with Fedify's own HTTP signature verifier
// (draft-cavage and RFC 9421): an independent reading of the signed requests Parley's
// test vectors hold.
//
// Usage: node verify_vectors.mjs   (prints a JSON object: case name -> verified, reason)
// Keys resolve from tests/vectors/keys.json; JSON-LD contexts from Fedify's preloaded
// set; nothing is fetched. A relay subscription is tried with the https:// form of its
// URL, then the wss:// one (FEDERATION.md accepts both as @target-uri).

import { readFile } from "node:fs/promises";

globalThis.navigator ??= { userAgent: "Node.js" };
const { verifyRequestDetailed } = await import("@fedify/fedify/sig");
const { preloadedContexts } = await import("@fedify/vocab-runtime");
const { Temporal } = await import("@js-temporal/polyfill");

const here = new URL("../vectors/", import.meta.url);
const vectors = JSON.parse(await readFile(new URL("signed_requests.json", here), "utf8"));
const keys = JSON.parse(await readFile(new URL("keys.json", here), "utf8"));
const documents = {};
for (const actor of Object.values(keys.actors)) documents[actor.id] = actor;

async function documentLoader(url) {
  const bare = url.split("#")[0];
  const document = documents[bare] ?? preloadedContexts[url];
  if (document == null) throw new Error(`no document for ${url}`);
  return { contextUrl: null, documentUrl: url, document };
}

const currentTime = Temporal.Instant.from(vectors.now);

async function verify(url, request) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) headers.set(name, value);
  const init = { method: request.method, headers };
  if (request.body != null) init.body = request.body;
  const result = await verifyRequestDetailed(new Request(url, init), {
    documentLoader,
    contextLoader: documentLoader,
    currentTime,
  });
  return result.verified ? { verified: true } : { verified: false, reason: result.reason.type };
}

const out = {};
for (const c of vectors.relay_subscriptions) {
  const wss = c.request.url;
  const https = wss.replace(/^wss:/, "https:").replace(/^ws:/, "http:");
  let result = await verify(https, c.request);
  if (!result.verified) {
    const viaWs = await verify(wss, c.request).catch((e) => ({ verified: false, reason: String(e) }));
    if (viaWs.verified) result = viaWs;
  }
  out[c.name] = result;
}
for (const c of [...vectors.signed_gets, ...vectors.inbox]) {
  out[c.name] = await verify(c.request.url, c.request);
}
process.stdout.write(JSON.stringify(out, null, 1));
