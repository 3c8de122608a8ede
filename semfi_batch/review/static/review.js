// The review page: cards from /api/jobs, decisions posted to /api/decide (saved by the server at once).
"use strict";

// current: the pair_id the keys act on, always one of `shown` (the cards on the page, in their order).
// drafts: pair_id -> the seed and backend typed into its card, not yet sent.
// seen: pair_id -> the digest of the outputs whose generated pictures have all been shown on its card; an
// accept or reject is made on those frames only (the cards are drawn again on every decision, so a card's
// pictures, once loaded, count as seen until its outputs change).
const state = { jobs: [], backends: [], current: null, shown: [], drafts: new Map(), seen: new Map() };
const SHOWN_FRAMES = 8; // frames per strip, evenly spread over the gap

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function spread(n, k) {
  if (n <= k) return Array.from({ length: n }, (_, i) => i + 1);
  const out = new Set();
  for (let i = 0; i < k; i++) out.add(Math.round((i * (n - 1)) / (k - 1)) + 1);
  return [...out];
}

function figure(src, caption) {
  return el("figure", {}, el("img", { src, alt: caption, loading: "lazy" }), el("figcaption", {}, caption));
}

function fmt(v, digits) {
  return v === null || v === undefined ? "-" : Number(v).toFixed(digits);
}

function card(job) {
  const id = encodeURIComponent(job.pair_id);
  const base = `/job/${id}`;
  // The outputs' digest in the URL: other frames get another URL, so the browser cannot show an image it
  // decoded before for this one, and the server refuses a picture the job no longer has (409).
  const version = job.outputs ? `?outputs=${encodeURIComponent(job.outputs)}` : "";
  const where = job.source_name
    ? `${job.source_name} frames ${job.start_frame}-${job.end_frame}`
    : "image pair";
  const tc = job.timecode_in ? `${job.timecode_in} - ${job.timecode_out}` : "-";
  const facts = el("div", { class: "facts" },
    el("span", { class: "decision " + job.decision, "data-role": "decision" }, job.decision),
    job.decided_earlier
      ? el("span", { "data-role": "earlier" },
        `(was ${job.decided_earlier}: ${job.unusable ? "stale or damaged" : "other frames"})`)
      : null,
    el("span", {}, where),
    el("span", {}, `reason: ${job.reason ?? "-"}`),
    el("span", {}, `score: ${fmt(job.score, 2)}`),
    el("span", { "data-role": "timecode" }, `timecode: ${tc}`),
    el("span", {}, `${job.mode}, ${job.gap_frames} frames`),
    el("span", {}, `backend: ${job.backend ?? "-"} (seed ${job.seed ?? "-"})`),
    el("span", {}, `warp error: ${fmt(job.warp_error, 2)}`),
  );
  if (job.next_seed !== null || job.next_backend) {
    facts.append(el("span", {}, `regeneration #${job.regenerations}: seed ${job.next_seed ?? "-"}, backend ${job.next_backend ?? "as before"}`));
  }
  const node = el("section", { class: "card", "data-pair": job.pair_id, "data-decision": job.decision,
    "data-outputs": job.outputs ?? "", tabIndex: -1 },
    el("h3", {}, job.pair_id), facts);
  if (job.status !== "done") {
    // A stale or damaged job: splice leaves it out, its pictures are not shown, and the server refuses a decision.
    const why = job.unusable ?? job.error;
    node.append(el("p", { class: "failed", "data-role": "job-status" }, `job ${job.status}${why ? ": " + why : ""}`));
  }
  const strips = el("div", { class: "strips" });
  // A job that failed or has not run may have no key images: a caption instead of a broken picture.
  const key = (which, frame) => el("div", {}, el("div", { class: "strip-title" }, `${which} key`),
    job.key_images.includes(which) ? figure(`${base}/key/${which}${version}`, `frame ${frame ?? which}`)
      : el("p", { class: "failed" }, "no key image"));
  strips.append(key("start", job.start_frame));
  const picks = spread(job.frames, SHOWN_FRAMES);
  if (job.originals > 0) {
    const strip = el("div", { class: "strip originals" });
    for (const n of spread(job.originals, SHOWN_FRAMES)) strip.append(figure(`${base}/original/${n}`, `original ${n}`));
    strips.append(el("div", {}, el("div", { class: "strip-title" }, "original (replaced)"), strip));
  }
  if (picks.length) {
    const strip = el("div", { class: "strip generated" });
    for (const n of picks) strip.append(figure(`${base}/generated/${n}${version}`, `#${n} of ${job.frames}`));
    strips.append(el("div", {}, el("div", { class: "strip-title" }, "generated"), strip));
    watchShown(job, [...strip.querySelectorAll("img")]);
  } else {
    state.seen.set(job.pair_id, job.outputs ?? "");
  }
  strips.append(key("end", job.end_frame));
  if (job.frames) {
    strips.append(el("div", { class: "preview" }, el("div", { class: "strip-title" }, "spliced, 1 s either side (loops)"),
      el("img", { src: `${base}/preview.gif${version}`, alt: "preview", loading: "lazy" })));
  }
  node.append(strips);
  // Text, not a number input: the seed goes to the server as its digits (a JavaScript number rounds 63 bits).
  const draft = state.drafts.get(job.pair_id) || { seed: "", backend: "" };
  const seed = el("input", { type: "text", inputMode: "numeric", placeholder: "new seed", class: "seed",
    value: draft.seed });
  const backend = el("select", { class: "backend" }, el("option", { value: "" }, "same backend"));
  for (const b of state.backends) backend.append(el("option", { value: b }, b));
  backend.value = draft.backend;
  // Kept while cards are drawn again (every decision redraws them), until this card's regeneration is saved.
  const keep = () => state.drafts.set(job.pair_id, { seed: seed.value, backend: backend.value });
  seed.addEventListener("input", keep);
  backend.addEventListener("change", keep);
  node.append(el("div", { class: "actions" },
    el("button", { class: "accept", "data-action": "accepted", onclick: () => decideOn(job.pair_id, "accepted") }, "accept (a)"),
    el("button", { class: "reject", "data-action": "rejected", onclick: () => decideOn(job.pair_id, "rejected") }, "reject (r)"),
    el("button", { class: "undecide", "data-action": "undecided", onclick: () => decideOn(job.pair_id, "undecided") }, "undecided (u)"),
    seed, backend,
    el("button", { class: "regenerate", "data-action": "regenerate", onclick: () => decideOn(job.pair_id, "regenerate") }, "regenerate (g)"),
  ));
  node.addEventListener("click", () => setCurrent(job.pair_id, false));
  return node;
}

// Marks the job's outputs seen once every one of its generated pictures has loaded (see `state.seen`).
function watchShown(job, images) {
  const digest = job.outputs ?? "";
  if (state.seen.get(job.pair_id) === digest) return;
  const check = () => {
    if (images.every((img) => img.complete && img.naturalWidth > 0)) state.seen.set(job.pair_id, digest);
  };
  for (const img of images) img.addEventListener("load", check);
  check();
}

function visibleJobs() {
  const filter = document.getElementById("filter").value;
  const reason = document.getElementById("reason").value;
  let jobs = state.jobs.filter((j) => (filter === "all" || j.decision === filter) && (!reason || j.reason === reason));
  if (document.getElementById("sort").value === "warp") {
    jobs = [...jobs].sort((a, b) => (b.warp_error ?? -1) - (a.warp_error ?? -1) || a.order - b.order);
  }
  return jobs;
}

function render() {
  const main = document.getElementById("cards");
  const jobs = visibleJobs();
  main.replaceChildren(...jobs.map(card));
  if (!jobs.length) main.append(el("p", {}, "No jobs match."));
  const counts = {};
  for (const j of state.jobs) counts[j.decision] = (counts[j.decision] || 0) + 1;
  document.getElementById("counts").textContent =
    `${state.jobs.length} jobs: ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
  document.getElementById("rerun").textContent = counts.regenerate
    ? `${counts.regenerate} job(s) to regenerate: run ${state.runCommand}` : "";
  const ids = jobs.map((j) => j.pair_id);
  if (!ids.includes(state.current)) {
    // The current card left the list (a decision the filter hides, another filter): the keys go on with the
    // card that took its place, never with one the editor cannot see.
    const was = state.shown.indexOf(state.current);
    const after = was < 0 ? undefined : state.shown.slice(was + 1).find((id) => ids.includes(id));
    const before = was < 0 ? undefined : state.shown.slice(0, was).reverse().find((id) => ids.includes(id));
    state.current = after ?? before ?? ids[0] ?? null;
  }
  state.shown = ids;
  markCurrent(false);
}

function markCurrent(scroll) {
  for (const n of document.querySelectorAll(".card")) {
    const on = n.dataset.pair === state.current;
    n.classList.toggle("current", on);
    if (on && scroll) n.scrollIntoView({ block: "nearest" });
  }
}

function setCurrent(pairId, scroll = true) {
  state.current = pairId;
  markCurrent(scroll);
}

function move(step) {
  const jobs = visibleJobs();
  if (!jobs.length) return;
  const i = jobs.findIndex((j) => j.pair_id === state.current);
  const next = Math.min(jobs.length - 1, Math.max(0, (i < 0 ? 0 : i + step)));
  setCurrent(jobs[next].pair_id);
}

// pair_id -> the last decision on it still being saved. A card's decisions are sent one after another, in
// the order they were made: sent together, the server could save them in either order, and the page showed
// whichever answer came last, so the page and decisions.json could disagree.
const saving = new Map();

function decideOn(pairId, decision) {
  const status = document.getElementById("status");
  const node = document.querySelector(`.card[data-pair="${CSS.escape(pairId)}"]`);
  if (!node) {
    status.textContent = `not saved: ${pairId} is not shown`;
    return;
  }
  // The frames the card's pictures show (their URLs carry this digest): an accept is made on those or refused.
  const shown = node.dataset.outputs || null;
  if ((decision === "accepted" || decision === "rejected") && state.seen.get(pairId) !== (shown ?? "")) {
    status.textContent = `not saved: ${pairId}'s frames have not loaded yet: look at them before deciding`;
    return;
  }
  const body = { pair_ids: [pairId], decision, outputs: { [pairId]: shown } };
  if (decision === "regenerate") {
    const seed = node.querySelector("input.seed").value.trim();
    const backend = node.querySelector("select.backend").value;
    if (seed !== "" && !/^[0-9]+$/.test(seed)) {
      status.textContent = `not saved: the seed must be a whole number from 0 to 2**63 - 1, got "${seed}"`;
      return;
    }
    if (seed !== "") body.seed = seed;
    if (backend) body.backend = backend;
  }
  const previous = saving.get(pairId) || Promise.resolve();
  const mine = previous.then(() => send(body, shown));
  saving.set(pairId, mine);
  mine.then(() => { if (saving.get(pairId) === mine) saving.delete(pairId); });
  return mine;
}

// Saves one decision and shows the card as the server answered (what decisions.json now holds); never throws.
async function send(body, shown) {
  const status = document.getElementById("status");
  const pairId = body.pair_ids[0];
  try {
    const res = await fetch("/api/decide", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    if (body.decision === "regenerate") state.drafts.delete(pairId);
    const renewed = [];
    for (const updated of data.jobs) {
      const i = state.jobs.findIndex((j) => j.pair_id === updated.pair_id);
      if (i >= 0) state.jobs[i] = updated;
      if (updated.outputs !== shown) renewed.push(updated.pair_id);
    }
    status.textContent = renewed.length
      ? `${renewed.join(", ")} ran again since the page showed it: look at its new frames before deciding` : "";
    render();
    document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
  } catch (err) {
    status.textContent = `not saved: ${err.message}`;
  }
}

// Whether some of a card can be seen: between the sticky header and the bottom of the window.
function inView(node) {
  const top = document.querySelector("header").getBoundingClientRect().bottom;
  const r = node.getBoundingClientRect();
  return r.bottom > top && r.top < window.innerHeight;
}

// The first card in view (cards are drawn top to bottom: a binary search, not a look at thousands), or null.
function firstInView() {
  const cards = document.querySelectorAll(".card");
  const top = document.querySelector("header").getBoundingClientRect().bottom;
  let lo = 0, hi = cards.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cards[mid].getBoundingClientRect().bottom > top) hi = mid; else lo = mid + 1;
  }
  return lo < cards.length && inView(cards[lo]) ? cards[lo] : null;
}

// Scrolled away from the highlighted card: the highlight moves to the first card in view, so that the keys act
// on a card the editor sees, never on one off screen.
let scrolled = null;
window.addEventListener("scroll", () => {
  clearTimeout(scrolled);
  scrolled = setTimeout(() => {
    const node = state.current && document.querySelector(`.card[data-pair="${CSS.escape(state.current)}"]`);
    if (node && inView(node)) return;
    const first = firstInView();
    if (first) setCurrent(first.dataset.pair, false);
  }, 50);
}, { passive: true });

// A decision by key, on the highlighted card only while it is in view (a key pressed before the highlight
// followed a scroll): else the card is brought into view and nothing is saved.
function decideByKey(decision) {
  if (!state.current) return;
  const node = document.querySelector(`.card[data-pair="${CSS.escape(state.current)}"]`);
  if (node && !inView(node)) {
    node.scrollIntoView({ block: "nearest" });
    document.getElementById("status").textContent =
      `not saved: ${state.current} was not in view; it is now: look at it, then press the key again`;
    return;
  }
  decideOn(state.current, decision);
}

document.addEventListener("keydown", (ev) => {
  if (ev.target.matches("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const keys = {
    j: () => move(1), ArrowDown: () => move(1), ArrowRight: () => move(1),
    k: () => move(-1), ArrowUp: () => move(-1), ArrowLeft: () => move(-1),
    a: () => decideByKey("accepted"),
    r: () => decideByKey("rejected"),
    g: () => decideByKey("regenerate"),
    u: () => decideByKey("undecided"),
  };
  if (keys[ev.key]) {
    ev.preventDefault();
    keys[ev.key]();
  }
});

// A chosen filter or order gives the keyboard back to the cards: a focused <select> would take a, r, j as
// a choice of its own options.
for (const id of ["filter", "reason", "sort"]) {
  document.getElementById(id).addEventListener("change", (ev) => ev.target.blur());
}
for (const id of ["filter", "reason"]) document.getElementById(id).addEventListener("change", render);

// Warp errors are measured in the background when review starts: fetch the latest before ordering by them.
document.getElementById("sort").addEventListener("change", async () => {
  if (document.getElementById("sort").value === "warp") {
    try {
      const res = await fetch("/api/jobs");
      const data = await res.json();
      if (!res.ok) throw new Error(data.error || res.statusText);
      const warp = Object.fromEntries(data.jobs.map((j) => [j.pair_id, j.warp_error]));
      for (const j of state.jobs) if (j.pair_id in warp) j.warp_error = warp[j.pair_id];
      document.getElementById("status").textContent = data.quality_pending ? "warp errors are still being measured" : "";
    } catch (err) {
      document.getElementById("status").textContent = `cannot refresh warp errors: ${err.message}`;
    }
  }
  render();
});

async function load() {
  const res = await fetch("/api/jobs");
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText); // the server's message: what is wrong, as the CLI says
  state.jobs = data.jobs;
  state.backends = data.backends;
  state.runCommand = data.run_command;
  document.getElementById("run").textContent = data.run;
  const reasons = [...new Set(state.jobs.map((j) => j.reason).filter(Boolean))].sort();
  const select = document.getElementById("reason");
  for (const r of reasons) select.append(el("option", { value: r }, r));
  render();
  document.body.dataset.ready = "1";
}

load().catch((err) => { document.getElementById("status").textContent = `cannot load the jobs: ${err.message}`; });
