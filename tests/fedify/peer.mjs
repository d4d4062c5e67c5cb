// A Fedify-based ActivityPub test peer for Parley's interop tests.
//
// One actor (`bob` by default) on http://127.0.0.1:<port>, served by Fedify
// (WebFinger, actor, inbox, followers/following/outbox collections), plus a
// small JSON control API under /_control/ that the Python tests drive
// (see tests/fedify_peer.py).
//
// Usage: node peer.mjs [--port N] [--host 127.0.0.1] [--username bob]
//                      [--authorized-fetch]
//                      [--first-knock=rfc9421|draft-cavage-http-signatures-12]
//                      [--rsa-only] [--skip-signature-verification]
//                      [--signature-time-window=SECONDS|off]
// Environment fallbacks: PEER_PORT, PEER_HOST, PEER_USERNAME,
// PEER_AUTHORIZED_FETCH=1, PEER_FIRST_KNOCK, PEER_RSA_ONLY=1.
// Prints `READY <port>` on stdout once listening; exits on SIGTERM/SIGINT.

import http from "node:http";
import { randomUUID } from "node:crypto";
import process from "node:process";

// Fedify expects a browser-like `navigator` (Node 22 has one, Node 20 does
// not), so this must run before Fedify is imported: hence dynamic imports.
globalThis.navigator ??= { userAgent: "Node.js" };

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const env = process.env;
  const opts = {
    port: Number(env.PEER_PORT ?? env.PORT ?? 0),
    host: env.PEER_HOST ?? "127.0.0.1",
    username: env.PEER_USERNAME ?? "bob",
    authorizedFetch: env.PEER_AUTHORIZED_FETCH === "1",
    firstKnock: env.PEER_FIRST_KNOCK ?? "rfc9421",
    rsaOnly: env.PEER_RSA_ONLY === "1",
    skipSignatureVerification: false,
    signatureTimeWindow: null, // Fedify's default (one hour)
  };
  const args = [...argv];
  const value = (arg) => {
    const eq = arg.indexOf("=");
    if (eq >= 0) return arg.slice(eq + 1);
    const next = args.shift();
    if (next == null) throw new Error(`${arg} needs a value`);
    return next;
  };
  while (args.length > 0) {
    const arg = args.shift();
    const name = arg.split("=")[0];
    if (name === "--port") opts.port = Number(value(arg));
    else if (name === "--host") opts.host = value(arg);
    else if (name === "--username") opts.username = value(arg);
    else if (name === "--authorized-fetch") opts.authorizedFetch = true;
    else if (name === "--first-knock") opts.firstKnock = value(arg);
    else if (name === "--rsa-only") opts.rsaOnly = true;
    else if (name === "--skip-signature-verification") opts.skipSignatureVerification = true;
    else if (name === "--signature-time-window") {
      const v = value(arg);
      opts.signatureTimeWindow = v === "off" || v === "false" ? false : Number(v);
    } else if (/^\d+$/.test(arg)) opts.port = Number(arg);
    else throw new Error(`unknown argument: ${arg}`);
  }
  if (!["rfc9421", "draft-cavage-http-signatures-12"].includes(opts.firstKnock)) {
    throw new Error(`--first-knock must be rfc9421 or draft-cavage-http-signatures-12`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`bad port: ${opts.port}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const {
  createFederation,
  MemoryKvStore,
  generateCryptoKeyPair,
  verifyRequestDetailed,
  SendActivityError,
} = await import("@fedify/fedify");
const {
  Accept,
  Activity,
  Announce,
  Create,
  Endpoints,
  Flag,
  Follow,
  Image,
  Like,
  Note,
  Person,
  PUBLIC_COLLECTION,
  Reject,
  Undo,
  Update,
  isActor,
} = await import("@fedify/vocab");
// Fedify's vocabulary takes times as Temporal objects (the polyfill it depends on).
const { Temporal } = await import("@js-temporal/polyfill");

// ---------------------------------------------------------------- state

const USERNAME = opts.username;
const SIGNATURE_HEADERS = ["signature", "signature-input"];

/** Every POST to an inbox, newest last. */
const inboxLog = [];
/** Every non-control request served (method, path, signature format, status). */
const requestLog = [];
/** Every outgoing HTTP request made by this process (through fetch). */
const outgoingLog = [];
/** Activities bob sent, with their delivery result. */
const outboxLog = [];
/** bob's followers: actor id -> { id, inboxId, endpoints, followId } */
const followers = new Map();
/** bob's follows: target actor id -> { followId, state, activity, target } */
const following = new Map();
/** bob's avatar (a 16x16 orange PNG), served at /avatar.png: an actor's `icon`. */
const AVATAR_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAF0lEQVR4nGP438BAEiJN9aiGUQ1DSgMAnHV/EBlpJJcAAAAASUVORK5CYII=",
  "base64",
);
/** JSON-LD of activities bob created, served at /activities/<uuid>. */
const activityDocs = new Map();

/** Keys the independent inbox verifier fetched (failures are not cached). */
const verifierKeys = new Map();
const verifierKeyCache = {
  get: async (keyId) => verifierKeys.get(keyId.href),
  set: async (keyId, key) => {
    if (key == null) verifierKeys.delete(keyId.href);
    else verifierKeys.set(keyId.href, key);
  },
};

function signatureFormat(headers) {
  if (headers.has("signature-input")) return "rfc9421";
  if (headers.has("signature")) return "draft-cavage-http-signatures-12";
  return null;
}

function headerObject(headers) {
  const out = {};
  for (const [k, v] of headers) out[k.toLowerCase()] = v;
  return out;
}

function errorText(error) {
  if (error instanceof SendActivityError) {
    return `${error.message}`;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// Log every outgoing request (Fedify uses the global fetch for WebFinger,
// document loading and delivery) so tests can see which signature spec was
// tried first and whether Fedify double-knocked.
const originalFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const isRequest = input instanceof Request;
  const method = (isRequest ? input.method : init?.method) ?? "GET";
  const url = isRequest ? input.url : String(input);
  const headers = new Headers(isRequest ? input.headers : init?.headers);
  const entry = {
    at: new Date().toISOString(),
    method,
    url,
    signature_format: signatureFormat(headers),
    headers: headerObject(headers),
    status: null,
    error: null,
  };
  outgoingLog.push(entry);
  try {
    const response = await originalFetch(input, init);
    entry.status = response.status;
    return response;
  } catch (error) {
    entry.error = errorText(error);
    throw error;
  }
};

// ---------------------------------------------------------------- keys

const keyPairs = [await generateCryptoKeyPair("RSASSA-PKCS1-v1_5")];
if (!opts.rsaOnly) keyPairs.push(await generateCryptoKeyPair("Ed25519"));

// ---------------------------------------------------------------- server

let federation = null;
let origin = null;

const server = http.createServer((req, res) => {
  handleNode(req, res).catch((error) => {
    console.error("unhandled error:", error);
    if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(error));
  });
});

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function handleNode(req, res) {
  const body = await readBody(req);
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const url = new URL(req.url, origin);
  const method = req.method ?? "GET";
  const makeRequest = () =>
    new Request(url, {
      method,
      headers,
      body: method === "GET" || method === "HEAD" || body.length === 0 ? undefined : body,
    });
  let response;
  if (url.pathname.startsWith("/_control/")) {
    response = await handleControl(makeRequest(), url, body);
  } else {
    response = await handleFederation(makeRequest, url, method, headers, body);
  }
  const outHeaders = {};
  for (const [k, v] of response.headers) outHeaders[k] = v;
  res.writeHead(response.status, outHeaders);
  res.end(Buffer.from(await response.arrayBuffer()));
}

function isInboxPath(pathname) {
  return pathname === "/inbox" || pathname === `/users/${USERNAME}/inbox`;
}

async function handleFederation(makeRequest, url, method, headers, body) {
  const logEntry = {
    at: new Date().toISOString(),
    method,
    path: url.pathname + url.search,
    signature_format: signatureFormat(headers),
    accept: headers.get("accept"),
    status: null,
  };
  requestLog.push(logEntry);

  if (method === "GET" && url.pathname === "/avatar.png") {
    logEntry.status = 200;
    return new Response(AVATAR_PNG, { headers: { "content-type": "image/png" } });
  }

  // Activities created by bob (Accept, Follow, Undo) and his notes are dereferenceable.
  if (method === "GET" && (url.pathname.startsWith("/activities/") || url.pathname.startsWith("/notes/"))) {
    const doc = activityDocs.get(url.href);
    logEntry.status = doc ? 200 : 404;
    return doc
      ? new Response(JSON.stringify(doc), {
          headers: { "content-type": "application/activity+json" },
        })
      : new Response("Not found", { status: 404 });
  }

  let inboxEntry = null;
  if (method === "POST" && isInboxPath(url.pathname)) {
    let activity = null;
    try {
      activity = JSON.parse(body.toString("utf8"));
    } catch {
      activity = null;
    }
    const objectField = activity?.object;
    inboxEntry = {
      received_at: new Date().toISOString(),
      path: url.pathname,
      type: activity?.type ?? null,
      id: activity?.id ?? null,
      actor: typeof activity?.actor === "object" ? activity?.actor?.id : activity?.actor ?? null,
      object: objectField ?? null,
      object_id: typeof objectField === "object" ? objectField?.id ?? null : objectField ?? null,
      activity,
      headers: headerObject(headers),
      signature: headers.get("signature"),
      signature_input: headers.get("signature-input"),
      signature_format: signatureFormat(headers),
      http_signature: null, // filled in below by an independent verification
      status: null, // what Fedify answered the sender
      handled_by: null, // the inbox listener that ran, if Fedify accepted it
      unverified_reason: null,
      error: null,
    };
    inboxLog.push(inboxEntry);
  }

  const request = makeRequest();
  const response = await federation.fetch(request, {
    contextData: { inboxEntry },
    onNotFound: () => new Response("Not found", { status: 404 }),
    onNotAcceptable: () => new Response("Not acceptable", { status: 406 }),
  });
  logEntry.status = response.status;

  if (inboxEntry != null) {
    inboxEntry.status = response.status;
    // Fedify does not tell listeners which HTTP signature spec verified the
    // request, so check it again here with Fedify's own verifier.
    try {
      // Like Fedify's inbox, fetch the sender's key with a GET signed by bob
      // (the sender may require authorized fetch); keys are cached here so
      // this adds at most one extra key fetch per key.
      const ctx = federation.createContext(makeRequest(), { inboxEntry: null });
      const result = await verifyRequestDetailed(makeRequest(), {
        documentLoader: await signedLoader(ctx),
        contextLoader: ctx.contextLoader,
        keyCache: verifierKeyCache,
        timeWindow:
          opts.signatureTimeWindow == null
            ? undefined
            : opts.signatureTimeWindow === false
              ? false
              : { seconds: opts.signatureTimeWindow },
      });
      inboxEntry.http_signature = result.verified
        ? {
            verified: true,
            spec: inboxEntry.signature_format,
            key_id: result.key.id?.href ?? null,
            owner: result.key.ownerId?.href ?? null,
          }
        : {
            verified: false,
            spec: inboxEntry.signature_format,
            key_id: result.reason.keyId?.href ?? null,
            reason: result.reason.type,
          };
    } catch (error) {
      inboxEntry.http_signature = {
        verified: false,
        spec: inboxEntry.signature_format,
        reason: errorText(error),
      };
    }
  }
  return response;
}

// ---------------------------------------------------------------- Fedify

function newActivityId() {
  return new URL(`/activities/${randomUUID()}`, origin);
}

async function remember(activity) {
  const doc = await activity.toJsonLd({ format: "compact" });
  activityDocs.set(activity.id.href, doc);
  return doc;
}

/** Sends `activity` from bob to `recipient`; records the outcome in the outbox log. */
async function deliver(ctx, recipient, activity) {
  const entry = {
    at: new Date().toISOString(),
    type: activity.constructor.name,
    id: activity.id.href,
    to: recipient.id?.href ?? null,
    inbox: recipient.inboxId?.href ?? null,
    activity: await remember(activity),
    ok: null,
    error: null,
  };
  outboxLog.push(entry);
  try {
    await ctx.sendActivity({ identifier: USERNAME }, recipient, activity);
    entry.ok = true;
  } catch (error) {
    entry.ok = false;
    entry.error = errorText(error);
    if (error instanceof SendActivityError) entry.status = error.statusCode;
  }
  return entry;
}

function markHandled(ctx, name) {
  const entry = ctx.data?.inboxEntry;
  if (entry != null) entry.handled_by = name;
}

async function signedLoader(ctx) {
  return await ctx.getDocumentLoader({ identifier: USERNAME });
}

function buildFederation() {
  const options = {
    kv: new MemoryKvStore(),
    origin,
    allowPrivateAddress: true,
    firstKnock: opts.firstKnock,
    skipSignatureVerification: opts.skipSignatureVerification,
  };
  if (opts.signatureTimeWindow === false) options.signatureTimeWindow = false;
  else if (opts.signatureTimeWindow != null) {
    options.signatureTimeWindow = { seconds: opts.signatureTimeWindow };
  }
  const fed = createFederation(options);

  const requireSignature = async (ctx) => (await ctx.getSignedKey()) != null;

  const actor = fed
    .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
      if (identifier !== USERNAME) return null;
      const keys = await ctx.getActorKeyPairs(identifier);
      return new Person({
        id: ctx.getActorUri(identifier),
        preferredUsername: identifier,
        name: `${identifier} (Fedify test peer)`,
        summary: "An ActivityPub test peer built on Fedify.",
        url: ctx.getActorUri(identifier),
        inbox: ctx.getInboxUri(identifier),
        outbox: ctx.getOutboxUri(identifier),
        followers: ctx.getFollowersUri(identifier),
        following: ctx.getFollowingUri(identifier),
        endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
        manuallyApprovesFollowers: false,
        discoverable: true,
        icon: new Image({ url: new URL("/avatar.png", ctx.origin), mediaType: "image/png" }),
        publicKey: keys[0].cryptographicKey,
        assertionMethods: keys.map((k) => k.multikey),
      });
    })
    .setKeyPairsDispatcher((_ctx, identifier) => (identifier === USERNAME ? keyPairs : []));

  const followersCol = fed.setFollowersDispatcher(
    "/users/{identifier}/followers",
    (_ctx, identifier) => {
      if (identifier !== USERNAME) return null;
      return {
        items: [...followers.values()].map((f) => ({
          id: f.id,
          inboxId: f.inboxId,
          endpoints: f.endpoints,
        })),
      };
    },
  );
  const followingCol = fed.setFollowingDispatcher(
    "/users/{identifier}/following",
    (_ctx, identifier) => {
      if (identifier !== USERNAME) return null;
      return {
        items: [...following.values()]
          .filter((f) => f.state === "accepted")
          .map((f) => new URL(f.target)),
      };
    },
  );
  const outboxCol = fed.setOutboxDispatcher("/users/{identifier}/outbox", (_ctx, identifier) => {
    if (identifier !== USERNAME) return null;
    return { items: [] };
  });

  if (opts.authorizedFetch) {
    actor.authorize(requireSignature);
    followersCol.authorize(requireSignature);
    followingCol.authorize(requireSignature);
    outboxCol.authorize(requireSignature);
  }

  fed
    .setInboxListeners("/users/{identifier}/inbox", "/inbox")
    // Key fetches for shared-inbox deliveries are signed by bob too (Fedify
    // signs them for the personal inbox already).
    .setSharedKeyDispatcher(() => ({ identifier: USERNAME }))
    .on(Follow, async (ctx, follow) => {
      markHandled(ctx, "Follow");
      if (follow.id == null || follow.actorId == null || follow.objectId == null) return;
      const parsed = ctx.parseUri(follow.objectId);
      if (parsed?.type !== "actor" || parsed.identifier !== USERNAME) return;
      const follower = await follow.getActor({
        documentLoader: await signedLoader(ctx),
        contextLoader: ctx.contextLoader,
      });
      if (follower == null || follower.id == null || follower.inboxId == null) {
        throw new Error(`cannot resolve follower ${follow.actorId.href}`);
      }
      followers.set(follower.id.href, {
        id: follower.id,
        inboxId: follower.inboxId,
        endpoints: follower.endpoints,
        followId: follow.id.href,
      });
      const accept = new Accept({
        id: newActivityId(),
        actor: follow.objectId,
        object: follow,
        to: follow.actorId,
      });
      // Deliver after answering the sender, so a sender that processes its
      // outgoing Follow synchronously cannot deadlock on our Accept.
      setTimeout(() => {
        deliver(ctx, follower, accept).catch((e) => console.error("Accept failed:", e));
      }, 0);
    })
    .on(Undo, async (ctx, undo) => {
      markHandled(ctx, "Undo");
      if (undo.actorId == null) return;
      let object = null;
      try {
        object = await undo.getObject({ documentLoader: ctx.documentLoader });
      } catch {
        object = null;
      }
      const follower = followers.get(undo.actorId.href);
      const undoesFollow =
        object instanceof Follow || (follower != null && undo.objectId?.href === follower.followId);
      if (undoesFollow) followers.delete(undo.actorId.href);
    })
    .on(Create, async (ctx, create) => {
      markHandled(ctx, "Create");
      await recordObject(ctx, create);
    })
    .on(Update, async (ctx, update) => {
      markHandled(ctx, "Update");
      await recordObject(ctx, update);
    })
    .on(Accept, async (ctx, accept) => {
      markHandled(ctx, "Accept");
      settleFollow(ctx, accept, "accepted");
    })
    .on(Reject, async (ctx, reject) => {
      markHandled(ctx, "Reject");
      settleFollow(ctx, reject, "rejected");
    })
    .on(Activity, async (ctx, activity) => {
      markHandled(ctx, activity.constructor.name);
    })
    .onUnverifiedActivity((ctx, _activity, reason) => {
      const entry = ctx.data?.inboxEntry;
      if (entry != null) {
        entry.unverified_reason = reason.type;
      }
      // Returning nothing keeps Fedify's default 401 response.
    })
    .onError((ctx, error) => {
      const entry = ctx.data?.inboxEntry;
      if (entry != null) entry.error = errorText(error);
      console.error("inbox error:", error);
    });

  return fed;
}

/** What Fedify's own vocabulary makes of a Create/Update's object (Event, Note, Audio). */
async function recordObject(ctx, activity) {
  const entry = ctx.data?.inboxEntry;
  if (entry == null) return;
  try {
    const object = await activity.getObject({
      documentLoader: await signedLoader(ctx),
      contextLoader: ctx.contextLoader,
    });
    if (object == null) return;
    const parsed = {
      type: object.constructor.name,
      id: object.id?.href ?? null,
      name: object.name?.toString() ?? null,
      content: object.content?.toString() ?? null,
      url: object.url?.href ?? null,
      inReplyTo: object.replyTargetId?.href ?? null,
      attributedTo: object.attributionId?.href ?? null,
      attachments: [],
    };
    if (object.startTime !== undefined) parsed.startTime = object.startTime?.toString() ?? null;
    for await (const item of object.getAttachments({
      documentLoader: await signedLoader(ctx),
      contextLoader: ctx.contextLoader,
    })) {
      parsed.attachments.push({
        type: item.constructor.name,
        mediaType: item.mediaType ?? null,
        url: item.url?.href ?? null,
        name: item.name?.toString() ?? null,
        duration: item.duration?.toString() ?? null,
      });
    }
    entry.parsed = parsed;
  } catch (error) {
    entry.parse_error = errorText(error);
  }
}

/** Sends an activity bob made (built by `make(id)`) to the actor at `to`. */
async function sendTo(ctx, to, make) {
  const recipient = await ctx.lookupObject(to, { documentLoader: await signedLoader(ctx) });
  if (recipient == null || !isActor(recipient)) throw new Error(`${to} is not an actor`);
  const activity = make(newActivityId());
  const delivery = await deliver(ctx, recipient, activity);
  return { activity: delivery.activity, delivered: delivery.ok, error: delivery.error };
}

function settleFollow(ctx, activity, state) {
  if (activity.actorId == null) return;
  const record = following.get(activity.actorId.href);
  if (record == null) return;
  const objectId = activity.objectId?.href;
  // Mastodon embeds the Follow; others refer to it by id.  Either way, the
  // sender of the Accept is the actor bob asked to follow.
  if (objectId == null || objectId === record.followId || record.state === "pending") {
    record.state = state;
    record.settled_by = activity.id?.href ?? null;
  }
}

// ---------------------------------------------------------------- control API

function json(data, status = 200) {
  return new Response(JSON.stringify(data, null, 1), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** WebFinger over the handle's own scheme (Fedify's lookupObject only does https). */
async function webfinger(handle, scheme) {
  const bare = handle.replace(/^@/, "").replace(/^acct:/, "");
  const at = bare.lastIndexOf("@");
  if (at <= 0) throw new Error(`not a handle: ${handle}`);
  const host = bare.slice(at + 1);
  const url = new URL(`${scheme}://${host}/.well-known/webfinger`);
  url.searchParams.set("resource", `acct:${bare}`);
  const response = await fetch(url, { headers: { accept: "application/jrd+json" } });
  if (!response.ok) throw new Error(`WebFinger ${url.href} answered ${response.status}`);
  const jrd = await response.json();
  const self = (jrd.links ?? []).find(
    (l) =>
      l.rel === "self" &&
      l.href != null &&
      (l.type === "application/activity+json" ||
        /^application\/ld\+json;\s*profile="https:\/\/www\.w3\.org\/ns\/activitystreams"/.test(
          l.type ?? "",
        )),
  );
  if (self == null) throw new Error(`WebFinger for ${handle} has no ActivityPub self link`);
  return { jrd, url: self.href };
}

/**
 * Resolves {handle | actor | url} to a Fedify object via ctx.lookupObject.
 * Handles go through WebFinger (`webfinger: "http"` (default) does it over
 * http here; `"fedify"` lets Fedify do it, which is https-only).
 */
async function resolve(ctx, body) {
  const signed = body.signed !== false;
  const documentLoader = signed ? await signedLoader(ctx) : ctx.documentLoader;
  const lookupOpts = { documentLoader, crossOrigin: "throw" };
  let jrd = null;
  let target = body.url ?? body.actor ?? null;
  if (target == null && body.handle != null) {
    if (body.webfinger === "fedify") {
      target = body.handle;
    } else {
      const found = await webfinger(body.handle, body.webfinger ?? "http");
      jrd = found.jrd;
      target = found.url;
    }
  }
  if (target == null) throw new Error("give one of handle, actor, url");
  const object = await ctx.lookupObject(target, lookupOpts);
  return { object, jrd, target, signed, documentLoader };
}

function actorSummary(actor) {
  return {
    id: actor.id?.href ?? null,
    type: actor.constructor.name,
    preferredUsername: actor.preferredUsername?.toString() ?? null,
    name: actor.name?.toString() ?? null,
    inbox: actor.inboxId?.href ?? null,
    sharedInbox: actor.endpoints?.sharedInbox?.href ?? null,
    outbox: actor.outboxId?.href ?? null,
    followers: actor.followersId?.href ?? null,
    following: actor.followingId?.href ?? null,
    publicKeyIds: actor.publicKeyIds.map((u) => u.href),
    assertionMethodIds: actor.assertionMethodIds.map((u) => u.href),
  };
}

async function readJson(body) {
  if (body.length === 0) return {};
  return JSON.parse(body.toString("utf8"));
}

async function handleControl(request, url, rawBody) {
  const route = `${request.method} ${url.pathname}`;
  const ctx = federation.createContext(request, { inboxEntry: null });
  try {
    switch (route) {
      case "GET /_control/info":
        return json({
          base_url: origin,
          actor_id: ctx.getActorUri(USERNAME).href,
          handle: `${USERNAME}@${new URL(origin).host}`,
          options: opts,
          key_ids: (await ctx.getActorKeyPairs(USERNAME)).map((k) => k.keyId.href),
        });
      case "GET /_control/inbox":
        return json(inboxLog);
      case "DELETE /_control/inbox":
        inboxLog.length = 0;
        return json({ ok: true });
      case "GET /_control/requests":
        return json(requestLog);
      case "GET /_control/outgoing":
        return json(outgoingLog);
      case "GET /_control/outbox":
        return json(outboxLog);
      case "DELETE /_control/logs":
        inboxLog.length = 0;
        requestLog.length = 0;
        outgoingLog.length = 0;
        outboxLog.length = 0;
        return json({ ok: true });
      case "GET /_control/followers":
        return json([...followers.keys()]);
      case "GET /_control/following":
        return json(
          [...following.values()].map((f) => ({
            actor: f.target,
            follow_id: f.followId,
            state: f.state,
            settled_by: f.settled_by ?? null,
          })),
        );
      case "POST /_control/lookup": {
        const body = await readJson(rawBody);
        const { object, jrd, target, signed, documentLoader } = await resolve(ctx, body);
        if (object == null) return json({ error: `lookup of ${target} found nothing` }, 404);
        const result = {
          target,
          signed,
          type: object.constructor.name,
          id: object.id?.href ?? null,
          is_actor: isActor(object),
          object: await object.toJsonLd({ format: "compact" }),
          webfinger: jrd,
        };
        if (isActor(object)) result.actor = actorSummary(object);
        if (body.raw) result.raw = (await documentLoader(target)).document;
        return json(result);
      }
      case "POST /_control/follow": {
        const body = await readJson(rawBody);
        const { object, jrd, target } = await resolve(ctx, body);
        if (object == null || !isActor(object) || object.id == null) {
          return json({ error: `${target} is not an actor` }, 404);
        }
        const follow = new Follow({
          id: newActivityId(),
          actor: ctx.getActorUri(USERNAME),
          object: object.id,
          to: object.id,
        });
        following.set(object.id.href, {
          target: object.id.href,
          followId: follow.id.href,
          state: "pending",
          activity: follow,
        });
        const delivery = await deliver(ctx, object, follow);
        return json(
          {
            actor: actorSummary(object),
            webfinger: jrd,
            follow: delivery.activity,
            delivered: delivery.ok,
            error: delivery.error,
          },
          delivery.ok ? 200 : 502,
        );
      }
      case "POST /_control/flag": {
        // A report, as Mastodon forwards one: a Flag naming the reported account (and
        // what else the body lists) with the comment as content, to the account's inbox.
        const body = await readJson(rawBody);
        const { object, target } = await resolve(ctx, body);
        if (object == null || !isActor(object) || object.id == null) {
          return json({ error: `${target} is not an actor` }, 404);
        }
        const flag = new Flag({
          id: newActivityId(),
          actor: ctx.getActorUri(USERNAME),
          objects: [object.id, ...(body.objects ?? []).map((u) => new URL(u))],
          content: body.content ?? "",
          to: object.id,
        });
        const delivery = await deliver(ctx, object, flag);
        return json(
          { flag: delivery.activity, delivered: delivery.ok, error: delivery.error },
          delivery.ok ? 200 : 502,
        );
      }
      case "POST /_control/undo-follow": {
        const body = await readJson(rawBody);
        let targetId = body.actor ?? null;
        let recipient = null;
        if (targetId == null || !following.has(targetId)) {
          const { object } = await resolve(ctx, body);
          if (object == null || object.id == null) return json({ error: "actor not found" }, 404);
          targetId = object.id.href;
          recipient = object;
        }
        const record = following.get(targetId);
        if (record == null) return json({ error: `bob does not follow ${targetId}` }, 404);
        if (recipient == null) {
          recipient = await ctx.lookupObject(targetId, {
            documentLoader: await signedLoader(ctx),
          });
        }
        if (recipient == null) return json({ error: `cannot fetch ${targetId}` }, 502);
        const undo = new Undo({
          id: newActivityId(),
          actor: ctx.getActorUri(USERNAME),
          object: record.activity,
          to: recipient.id,
        });
        const delivery = await deliver(ctx, recipient, undo);
        if (delivery.ok) following.delete(targetId);
        return json(
          { undo: delivery.activity, delivered: delivery.ok, error: delivery.error },
          delivery.ok ? 200 : 502,
        );
      }
      case "POST /_control/reply": {
        // bob replies to a post (a room's announcement): Create{Note inReplyTo}.
        const body = await readJson(rawBody);
        const noteId = new URL(`/notes/${randomUUID()}`, origin);
        const note = new Note({
          id: noteId,
          attribution: ctx.getActorUri(USERNAME),
          replyTarget: new URL(body.inReplyTo),
          content: body.content,
          published: Temporal.Now.instant(),
          to: PUBLIC_COLLECTION,
          ccs: [new URL(body.to)],
        });
        activityDocs.set(noteId.href, await note.toJsonLd({ format: "compact" }));
        const result = await sendTo(ctx, body.to, (id) =>
          new Create({ id, actor: ctx.getActorUri(USERNAME), object: note, to: PUBLIC_COLLECTION, ccs: [new URL(body.to)] }),
        );
        return json({ note: noteId.href, ...result }, result.delivered ? 200 : 502);
      }
      case "POST /_control/rsvp": {
        // bob answers an Event with Accept (FEP-8a8e RSVP).
        const body = await readJson(rawBody);
        const result = await sendTo(ctx, body.to, (id) =>
          new Accept({ id, actor: ctx.getActorUri(USERNAME), object: new URL(body.event), to: new URL(body.to) }),
        );
        return json(result, result.delivered ? 200 : 502);
      }
      case "POST /_control/like":
      case "POST /_control/announce": {
        const body = await readJson(rawBody);
        const Kind = route.endsWith("like") ? Like : Announce;
        const result = await sendTo(ctx, body.to, (id) =>
          new Kind({ id, actor: ctx.getActorUri(USERNAME), object: new URL(body.object), to: PUBLIC_COLLECTION, ccs: [new URL(body.to)] }),
        );
        return json(result, result.delivered ? 200 : 502);
      }
      default:
        return json({ error: `no control route ${route}` }, 404);
    }
  } catch (error) {
    console.error(`control ${route} failed:`, error);
    return json({ error: errorText(error) }, 500);
  }
}

// ---------------------------------------------------------------- start

server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const hostPart = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  origin = `http://${hostPart}:${port}`;
  federation = buildFederation();
  process.stdout.write(`READY ${port}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
