// Expands JSON-LD documents with jsonld.js (Digital Bazaar's processor, the one Fedify
// uses): an independent check that Parley's documents mean what FEDERATION.md says.
//
// Usage: node expand.mjs < documents.json   (a JSON array of documents)
// Prints a JSON array of their expanded forms. Contexts come from Fedify's preloaded set
// (ActivityStreams, security ...); any other context URL is fetched only from 127.0.0.1
// (a node under test serving /ns/parley); nothing else is fetched.

globalThis.navigator ??= { userAgent: "Node.js" };
const { default: jsonld } = await import("jsonld");
const { preloadedContexts } = await import("@fedify/vocab-runtime");

async function documentLoader(url) {
  if (url in preloadedContexts) {
    return { contextUrl: null, documentUrl: url, document: preloadedContexts[url] };
  }
  if (new URL(url).hostname === "127.0.0.1") {
    const response = await fetch(url, { headers: { Accept: "application/ld+json" } });
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return { contextUrl: null, documentUrl: url, document: await response.json() };
  }
  throw new Error(`no network for ${url}`);
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const documents = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const expanded = [];
for (const doc of documents) {
  expanded.push(await jsonld.expand(doc, { documentLoader, safe: true }));
}
process.stdout.write(JSON.stringify(expanded));
