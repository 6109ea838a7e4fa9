// The demo's Slack: watch the stand-in's workspace and act in it as one of its people.
//
// State comes from GET /standin/watch (a long poll that answers as soon as anything changes);
// every action goes through the stand-in's control routes, which send the app the signed
// request Slack would send.

import { collectValues, h, renderBlocks } from "./blocks.js";
import { emojiHtml } from "./emoji.js";
import { mrkdwn, plainText } from "./mrkdwn.js";

const BOT_USER = "U0ALIGNBOT";
const EYE = '<svg viewBox="0 0 16 16" width="14" height="14"><path d="M1 8s2.6-4.6 7-4.6S15 8 15 8s-2.6 4.6-7 4.6S1 8 1 8z" fill="none" stroke="currentColor" stroke-width="1.4"/><circle cx="8" cy="8" r="2.1" fill="currentColor"/></svg>';
const $ = (sel) => document.querySelector(sel);

const ui = {
  state: null,
  etag: "",
  me: null,
  view: { kind: "channel", id: null },   // or { kind: "app", tab: "home" | "messages" }
  thread: null,                          // { channel, ts }
  dismissed: new Set(),                  // ephemeral messages the person dismissed
  seen: {},                              // channel id → message count last seen
  modalKey: null,                        // "<view id>:<hash>" of the rendered modal
  homeKey: null,
  intro: null,                           // true while the demo's introduction is open
  introKey: null,
  users: new Map(),
  channels: new Map(),
};

// -- talking to the stand-in -------------------------------------------------------------------

async function post(action, body) {
  let response;
  try {
    response = await fetch(`/standin/${action}`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: ui.me, ...body }),
    });
  } catch (err) {
    toast(`The stand-in is not answering (${err.message}).`);
    return null;
  }
  const data = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
  if (!data.ok) {
    toast(data.error || `HTTP ${response.status}`);
    return null;
  }
  const d = data.delivery;
  if (d && (d.timed_out || (d.status && d.status >= 400) || (d.status === 0 && d.error))) {
    toast(d.timed_out ? "alignbot did not answer within 3 seconds."
      : `alignbot answered HTTP ${d.status}${d.error ? ` (${d.error})` : ""}.`);
  }
  return data;
}

async function watch() {
  let delay = 250;
  for (;;) {
    try {
      const response = await fetch(`/standin/watch?since=${encodeURIComponent(ui.etag)}&wait=5`,
        { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      setLive(true);
      delay = 250;
      if (data.state) {
        ui.etag = data.etag;
        ui.state = data.state;
        render();
      }
    } catch (err) {
      setLive(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 4000);
    }
  }
}

function setLive(live) {
  const node = $("#live");
  node.classList.toggle("offline", !live);
  node.textContent = live ? "live" : "reconnecting…";
}

// -- helpers ------------------------------------------------------------------------------------

const humans = () => (ui.state?.users || []).filter((u) => !u.is_bot && !u.deleted && u.id !== "USLACKBOT");
const namedChannels = () => (ui.state?.channels || []).filter((c) => !c.is_im)
  .sort((a, b) => a.name.localeCompare(b.name));
const myDm = () => (ui.state?.channels || []).find((c) => c.is_im && c.user === ui.me);
const tsNum = (ts) => parseFloat(ts);
const clock = (ts) => new Date(tsNum(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const fullTime = (ts) => new Date(tsNum(ts) * 1000).toLocaleString();

function ctxFor(surface, extra = {}) {
  return {
    users: ui.users, channels: ui.channels, usergroups: ui.state?.usergroups || {}, me: ui.me,
    surface, ...extra,
  };
}

function displayName(userId) {
  if (userId === BOT_USER) return "alignbot";
  if (userId === "USLACKBOT") return "Slackbot";
  const u = ui.users.get(userId);
  return u ? (u.real_name || u.name) : userId;
}

const isNarrator = (userId) => Boolean(userId) && userId === ui.state?.intro?.narrator;

function avatar(userId) {
  if (userId === BOT_USER) return h("div", { class: "avatar avatar-bot", "aria-hidden": "true" }, "a");
  if (isNarrator(userId)) return h("div", { class: "avatar avatar-narrator", "aria-hidden": "true", html: emojiHtml("clapper") });
  const name = displayName(userId);
  const hue = [...userId].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 360, 7);
  return h("div", { class: "avatar", style: `background:hsl(${hue} 45% 45%)`, "aria-hidden": "true" },
    name.slice(0, 1).toUpperCase());
}

// -- rendering ------------------------------------------------------------------------------------

function render() {
  const s = ui.state;
  if (!s) return;
  ui.users = new Map(s.users.map((u) => [u.id, u]));
  ui.channels = new Map(s.channels.map((c) => [c.id, c]));
  renderPicker();
  if (ui.view.kind === "channel" && !ui.channels.has(ui.view.id)) {
    ui.view = { kind: "channel", id: namedChannels()[0]?.id ?? null };
  }
  renderSidebar();
  renderMain();
  renderThread();
  renderModal();
  renderIntro();
}

function renderPicker() {
  const picker = $("#user-picker");
  const people = humans();
  const wanted = people.map((u) => `${u.id}:${u.real_name}`).join("|");
  if (picker.dataset.users !== wanted) {
    picker.dataset.users = wanted;
    picker.replaceChildren(...people.map((u) => h("option", { value: u.id }, u.real_name || u.name)));
  }
  if (!ui.me || !ui.users.has(ui.me)) {
    const fromUrl = new URLSearchParams(location.search).get("as");
    const stored = localStorage.getItem("standin.me");
    ui.me = [fromUrl, stored].find((id) => id && people.some((u) => u.id === id)) ?? people[0]?.id ?? null;
  }
  picker.value = ui.me ?? "";
  const groups = Object.entries(ui.state.usergroups || {}).filter(([, m]) => m.includes(ui.me));
  $("#me-groups").textContent = groups.length
    ? groups.map(([id]) => "@" + id.replace(/^S0*/, "").toLowerCase()).join(" ") : "";
}

function channelMessages(ch) {
  const mine = (ui.state.ephemeral[ui.me] || []).filter((m) => m.channel === ch.id && !m.thread_ts
    && !ui.dismissed.has(m.ts)).map((m) => ({ ...m, ephemeral: true }));
  return [...ch.messages, ...mine].sort((a, b) => tsNum(a.ts) - tsNum(b.ts));
}

function renderSidebar() {
  const list = $("#channel-list");
  const items = namedChannels().map((ch) => {
    const count = ch.messages.length;
    const current = ui.view.kind === "channel" && ui.view.id === ch.id;
    if (current || ui.seen[ch.id] === undefined) ui.seen[ch.id] = count;
    const unread = count - ui.seen[ch.id];
    return h("li", {},
      h("button", {
        type: "button", class: "side-item" + (current ? " active" : "") + (unread > 0 ? " unread" : ""),
        "data-testid": `channel-${ch.name}`, "data-channel-id": ch.id,
        onclick: () => openChannel(ch.id),
      }, h("span", { class: "hash" }, ch.is_private ? "🔒" : "#"), h("span", { class: "side-name" }, ch.name),
      unread > 0 ? h("span", { class: "badge" }, String(unread)) : null));
  });
  list.replaceChildren(...items);
  const appActive = ui.view.kind === "app";
  const app = $("#app-item");
  app.classList.toggle("active", appActive);
}

function openChannel(id) {
  ui.view = { kind: "channel", id };
  ui.thread = null;
  render();
  scrollToBottom();
}

function openApp(tab) {
  ui.view = { kind: "app", tab };
  ui.thread = null;
  if (tab === "home") post("home", {});  // Slack sends app_home_opened each time
  render();
  if (tab === "messages") scrollToBottom();
}

function renderMain() {
  const header = $("#main-header");
  const composer = $("#composer");
  const box = $("#command-box");
  if (ui.view.kind === "app") {
    const tab = ui.view.tab;
    header.replaceChildren(
      h("div", { class: "title" }, avatar(BOT_USER), h("span", {}, "alignbot"), h("span", { class: "app-badge" }, "APP")),
      h("nav", { class: "tabs", role: "tablist" },
        h("button", { type: "button", role: "tab", class: tab === "home" ? "active" : "", "data-testid": "tab-home",
          onclick: () => openApp("home") }, "Home"),
        h("button", { type: "button", role: "tab", class: tab === "messages" ? "active" : "", "data-testid": "tab-messages",
          onclick: () => openApp("messages") }, "Messages")));
    if (tab === "home") {
      composer.hidden = true;
      renderHome();
      return;
    }
    composer.hidden = false;
    box.placeholder = "Message alignbot — type a slash command, e.g. /drift mine";
    const dm = myDm();
    renderMessageList(dm ? channelMessages(dm) : [], dm?.id,
      "This is your direct message conversation with alignbot. Its notes to you appear here.");
    return;
  }
  ui.homeKey = null;
  const ch = ui.channels.get(ui.view.id);
  if (!ch) {
    header.replaceChildren(h("div", { class: "title" }, "No channels"));
    $("#messages").replaceChildren();
    composer.hidden = true;
    return;
  }
  header.replaceChildren(
    h("div", { class: "title" }, h("span", { class: "hash" }, "#"), h("span", { "data-testid": "channel-title" }, ch.name)),
    h("div", { class: "header-meta" }, `${ch.num_members} members`));
  composer.hidden = false;
  box.placeholder = `Message #${ch.name} — type a slash command, e.g. /drift or /drift mine`;
  renderMessageList(channelMessages(ch), ch.id,
    `This is the very beginning of #${ch.name}. alignbot posts the drift it finds here.`);
}

function renderHome() {
  const home = ui.state.homes[ui.me];
  const list = $("#messages");
  const key = home ? `${ui.me}:${home.id}:${home.hash}` : `${ui.me}:none`;
  if (ui.homeKey === key && list.dataset.surface === "home") return;
  ui.homeKey = key;
  list.dataset.surface = "home";
  const content = home
    ? renderBlocks(home.blocks, ctxFor("home", {
        onButton: (el, blockId, node) => act(node, "click", { view_id: home.id, button: el.action_id }),
      }))
    : h("div", { class: "empty" }, "Opening alignbot's Home…");
  list.replaceChildren(h("div", { class: "home", "data-testid": "app-home" }, content));
}

function renderMessageList(messages, channelId, emptyText) {
  const list = $("#messages");
  const following = seesLatest(list);
  if (list.dataset.surface !== `ch:${channelId}:${ui.me}`) {
    list.dataset.surface = `ch:${channelId}:${ui.me}`;
    list.replaceChildren();
  }
  const existing = new Map([...list.children].filter((n) => n.dataset.key).map((n) => [n.dataset.key, n]));
  const wanted = [];
  if (!messages.length) {
    const empty = existing.get("empty") || h("div", { class: "empty" }, emptyText);
    empty.dataset.key = "empty";
    wanted.push(empty);
  }
  let grew = false;
  for (const m of messages) {
    const key = `${m.ephemeral ? "e" : "m"}:${m.ts}`;
    const sig = JSON.stringify([m.text, m.blocks, m.attachments, m.files, m.reply_count, m.edited, m.edit_count]);
    const old = existing.get(key);
    if (old && old.dataset.sig === sig) { wanted.push(old); continue; }
    const node = renderMessage(m, channelId, "channel");
    node.dataset.key = key;
    node.dataset.sig = sig;
    if (old) node.classList.add("flash");  // edited in place: show it
    else grew = true;
    wanted.push(node);
  }
  // Put the wanted nodes in order, reusing nodes that did not change.
  const keep = new Set(wanted);
  [...list.children].forEach((n) => { if (!keep.has(n)) n.remove(); });
  wanted.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  if (grew && following) scrollToBottom();
}

// Whether the newest message has started to show: then a new one is followed into view.
function seesLatest(list) {
  const last = list.lastElementChild;
  if (!last || list.scrollHeight <= list.clientHeight + 80) return true;
  return last.getBoundingClientRect().top < list.getBoundingClientRect().bottom - 24;
}

// Show the newest message from its first line: a message taller than the pane is not opened
// in its middle, with its beginning scrolled out of sight.
function scrollToBottom() {
  const list = $("#messages");
  requestAnimationFrame(() => {
    const last = list.lastElementChild;
    list.scrollTop = list.scrollHeight;
    if (!last) return;
    const overshoot = list.getBoundingClientRect().top + 8 - last.getBoundingClientRect().top;
    if (overshoot > 0) list.scrollTop -= overshoot;
  });
}

function renderMessage(m, channelId, where) {
  const author = m.user || BOT_USER;
  const isBot = Boolean(m.bot_id) || author === BOT_USER;
  const ctx = ctxFor("message", {
    onButton: (el, blockId, node) => act(node, "click", { channel: channelId, ts: m.ts, button: el.action_id }),
    onSelect: (el, blockId, option, node) =>
      act(node, "choose", { channel: channelId, ts: m.ts, action_id: el.action_id, option: option.value }),
  });
  const body = h("div", { class: "msg-body" },
    h("div", { class: "msg-meta" },
      h("span", { class: "author" }, displayName(author)),
      isBot ? h("span", { class: "app-badge" }, "APP") : null,
      isNarrator(author) ? h("span", { class: "app-badge demo-badge" }, "DEMO") : null,
      h("time", { datetime: new Date(tsNum(m.ts) * 1000).toISOString(), title: fullTime(m.ts) }, clock(m.ts)),
      m.edited ? h("span", { class: "edited", title: `edited ${fullTime(m.edited.ts)}` }, "(edited)") : null));
  if (m.blocks?.length) body.append(renderBlocks(m.blocks, ctx));
  else if (m.text) body.append(h("div", { class: "msg-text", html: mrkdwn(m.text, ctx) }));
  for (const att of m.attachments || []) {
    body.append(h("div", { class: "attachment", style: att.color ? `border-color:${cssColor(att.color)}` : "" },
      att.pretext ? h("div", { html: mrkdwn(att.pretext, ctx) }) : null,
      att.title ? h("div", { class: "att-title" }, att.title) : null,
      att.text ? h("div", { html: mrkdwn(att.text, ctx) }) : null,
      att.blocks ? renderBlocks(att.blocks, ctx) : null));
  }
  for (const f of m.files || []) body.append(renderFile(f));
  if (where === "channel" && m.reply_count) {
    body.append(h("button", {
      type: "button", class: "replies", "data-testid": `replies-${m.ts}`,
      onclick: () => { ui.thread = { channel: channelId, ts: m.ts }; renderThread(); },
    }, `${m.reply_count} ${m.reply_count === 1 ? "reply" : "replies"}`,
    m.latest_reply ? h("span", { class: "last-reply" }, `Last reply ${clock(m.latest_reply)}`) : null));
  }
  if (m.ephemeral) {
    body.append(h("div", { class: "ephemeral-note" },
      h("span", { class: "eye", "aria-hidden": "true", html: EYE }), "Only visible to you",
      h("button", { type: "button", class: "link", onclick: () => { ui.dismissed.add(m.ts); render(); } }, "Dismiss message")));
  }
  return h("div", {
    class: "msg" + (m.ephemeral ? " ephemeral" : "") + (isNarrator(author) ? " narrator" : ""),
    "data-testid": `message-${m.ts}`,
    "data-ts": m.ts, "data-channel": channelId, "data-ephemeral": m.ephemeral ? "true" : "false",
  }, avatar(author), body);
}

function renderFile(f) {
  const src = `/standin/files/${encodeURIComponent(f.id)}`;
  const isImage = /\.(png|jpe?g|gif|svg|webp)$/i.test(f.name || "");
  return h("figure", { class: "file" },
    h("figcaption", {}, f.title || f.name),
    isImage ? h("img", { src, alt: f.alt_txt || f.title || f.name, loading: "lazy" })
      : h("a", { href: src, download: f.name }, `Download ${f.name}`));
}

const cssColor = (c) => (/^[0-9a-f]{6}$/i.test(c) ? `#${c}` : { good: "#2eb67d", warning: "#ecb22e", danger: "#e01e5a" }[c] || c);

function renderThread() {
  const pane = $("#thread");
  const t = ui.thread;
  const ch = t && ui.channels.get(t.channel);
  const root = ch?.messages.find((m) => m.ts === t.ts);
  document.body.classList.toggle("with-thread", Boolean(root));
  if (!root) { pane.hidden = true; pane.replaceChildren(); delete pane.dataset.sig; delete pane.dataset.root; return; }
  pane.hidden = false;
  const mine = (ui.state.ephemeral[ui.me] || []).filter((m) => m.channel === ch.id && m.thread_ts === root.ts)
    .map((m) => ({ ...m, ephemeral: true }));
  const replies = [...root.thread, ...mine].sort((a, b) => tsNum(a.ts) - tsNum(b.ts));
  const sig = JSON.stringify([ui.me, root, mine]);
  if (pane.dataset.sig === sig) return;
  const opened = pane.dataset.root !== `${ch.id}:${root.ts}`;
  pane.dataset.sig = sig;
  pane.dataset.root = `${ch.id}:${root.ts}`;
  pane.replaceChildren(
    h("div", { class: "thread-header" },
      h("div", {}, h("strong", {}, "Thread"), h("span", { class: "header-meta" }, ` #${ch.name}`)),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Close thread", "data-testid": "thread-close",
        onclick: () => { ui.thread = null; renderThread(); } }, "✕")),
    h("div", { class: "thread-body", "data-testid": "thread-pane" },
      renderMessage({ ...root, reply_count: 0 }, ch.id, "thread"),
      h("div", { class: "thread-divider" }, `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`),
      h("div", { class: "thread-replies", "data-testid": "thread-replies" },
        replies.map((r) => renderMessage(r, ch.id, "thread")))));
  const body = pane.querySelector(".thread-body");
  if (opened) requestAnimationFrame(() => { body.scrollTop = body.scrollHeight; });
}

// -- modals -----------------------------------------------------------------------------------

function renderModal() {
  const layer = $("#modal-layer");
  const view = ui.state.modals[ui.me];
  const key = view ? `${ui.me}:${view.id}:${view.hash}` : null;
  if (key === ui.modalKey) return;
  ui.modalKey = key;
  if (!view) { layer.hidden = true; layer.replaceChildren(); return; }
  layer.hidden = false;
  const errors = {};
  const status = h("div", { class: "modal-status", role: "status", "data-testid": "modal-status" });
  const body = h("div", { class: "modal-body" });
  const draw = () => body.replaceChildren(renderBlocks(view.blocks, ctxFor("modal", {
    errors,
    onButton: (el, blockId, node) => act(node, "click", { view_id: view.id, button: el.action_id }),
  })));
  draw();
  const submit = async (btn) => {
    const { values, errors: local } = collectValues(body, view.blocks);
    if (Object.keys(local).length) { showErrors(body, local); return; }
    btn.disabled = true;
    status.textContent = "";
    const data = await post("submit", { view_id: view.id, values });
    btn.disabled = false;
    if (!data) { status.textContent = "We had some trouble connecting. Try again?"; return; }
    const d = data.delivery || {};
    if (d.errors && Object.keys(d.errors).length) showErrors(body, d.errors);
    else if (d.status !== 200) status.textContent = "We had some trouble connecting. Try again?";
  };
  const close = () => post("close", { view_id: view.id });
  const dialog = h("div", {
    class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title",
    "data-testid": "modal", "data-view-id": view.id, "data-callback-id": view.callback_id || "",
  },
  h("div", { class: "modal-header" },
    h("h2", { id: "modal-title", html: plainText(view.title) }),
    h("button", { type: "button", class: "icon-btn", "aria-label": "Close", "data-testid": "modal-x", onclick: close }, "✕")),
  body,
  h("div", { class: "modal-footer" }, status,
    h("button", { type: "button", class: "bk-btn", "data-testid": "modal-cancel", onclick: close },
      view.close ? view.close.text : "Cancel"),
    view.submit ? h("button", { type: "button", class: "bk-btn primary", "data-testid": "modal-submit",
      onclick: (e) => submit(e.currentTarget) }, view.submit.text) : null));
  layer.replaceChildren(h("div", { class: "modal-backdrop" }, dialog));
  dialog.querySelector("input, textarea, select")?.focus();
}

function showErrors(body, errors) {
  body.querySelectorAll(".bk-input").forEach((wrap) => {
    const blockId = wrap.dataset.testid.replace(/^input-block-/, "");
    const message = errors[blockId];
    wrap.classList.toggle("has-error", Boolean(message));
    wrap.querySelector(".bk-input-error").textContent = message || "";
  });
  const unknown = Object.keys(errors).filter((id) => !body.querySelector(`[data-testid="input-block-${CSS.escape(id)}"]`));
  if (unknown.length) toast(unknown.map((id) => `${id}: ${errors[id]}`).join("; "));
}

// -- the demo's introduction ------------------------------------------------------------------------

function renderIntro() {
  const intro = ui.state.intro;
  const layer = $("#intro-layer");
  $("#intro-list").hidden = !intro;
  if (ui.intro === null && intro) ui.intro = true;  // the page opens on it
  if (!intro || !ui.intro) { layer.hidden = true; layer.replaceChildren(); ui.introKey = null; return; }
  const key = JSON.stringify([intro, ui.me, humans().length]);
  if (ui.introKey === key) return;
  ui.introKey = key;
  const ctx = ctxFor("message");
  const md = (text, cls) => h("div", { class: cls, html: mrkdwn(text, ctx) });
  const people = intro.people.filter((p) => ui.users.has(p.id)).map((p) => h("li", {},
    h("button", {
      type: "button", class: "intro-person" + (p.id === ui.me ? " me" : ""), "data-testid": `intro-as-${p.id}`,
      title: `Act as ${displayName(p.id)}`, onclick: () => { setMe(p.id); },
    }, avatar(p.id), h("span", {}, h("strong", {}, displayName(p.id)), h("span", { class: "intro-role" }, p.role)))));
  const start = intro.started
    ? h("button", { type: "button", class: "bk-btn primary", "data-testid": "intro-start", onclick: closeIntro }, "Back to the demo")
    : h("button", { type: "button", class: "bk-btn primary", "data-testid": "intro-start", onclick: startStory }, "Start the story");
  layer.hidden = false;
  layer.replaceChildren(h("div", { class: "modal-backdrop" }, h("div", {
    class: "modal intro", role: "dialog", "aria-modal": "true", "aria-labelledby": "intro-title", "data-testid": "intro",
  },
  h("div", { class: "modal-header" }, h("h2", { id: "intro-title" }, intro.title)),
  h("div", { class: "modal-body" },
    md(intro.about, "intro-about"),
    h("h3", {}, "Who you can be"),
    h("p", { class: "intro-hint" }, "Click a person to act as them (or pick at the top right at any time); the bot decides who may approve."),
    h("ul", { class: "intro-people" }, people),
    h("h3", {}, "What to try"),
    h("ol", { class: "intro-try" }, intro.try.map((t) => h("li", { html: mrkdwn(t, ctx) })))),
  h("div", { class: "modal-footer" }, md(intro.story, "intro-story"), start))));
}

async function startStory(event) {
  event.currentTarget.disabled = true;
  await post("start", {});
  closeIntro();
  const planning = namedChannels().find((c) => c.name === "planning");
  if (planning) openChannel(planning.id);
}

function closeIntro() {
  ui.intro = false;
  render();
}

function setMe(id) {
  ui.me = id;
  localStorage.setItem("standin.me", ui.me);
  ui.modalKey = null;
  ui.homeKey = null;
  ui.dismissed.clear();
  if (ui.view.kind === "app" && ui.view.tab === "home") post("home", {});
  render();
  scrollToBottom();
}

// -- acting ---------------------------------------------------------------------------------------

async function act(node, action, body) {
  node.classList.add("busy");
  node.disabled = true;
  try {
    await post(action, body);
  } finally {
    node.classList.remove("busy");
    node.disabled = false;
  }
}

async function sendCommand(event) {
  event.preventDefault();
  const box = $("#command-box");
  const text = box.value.trim();
  if (!text) return;
  if (!text.startsWith("/")) {
    toast("This stand-in sends slash commands only — try /drift, /drift mine or /drift help.");
    return;
  }
  const channel = ui.view.kind === "app" ? myDm()?.id ?? ui.me : ui.view.id;
  box.disabled = true;
  const data = await post("command", { text, channel });
  box.disabled = false;
  box.focus();
  if (data) { box.value = ""; scrollToBottom(); }
}

function toast(text) {
  const node = h("div", { class: "toast", role: "alert", "data-testid": "toast" }, text);
  $("#toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

// -- start --------------------------------------------------------------------------------------

function start() {
  $("#user-picker").addEventListener("change", (e) => setMe(e.target.value));
  $("#app-item").addEventListener("click", () => openApp("home"));
  $("#intro-item").addEventListener("click", () => { ui.intro = true; render(); });
  $("#composer").addEventListener("submit", sendCommand);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    if (ui.intro && ui.state?.intro?.started) closeIntro();
    else if (ui.state?.modals[ui.me]) post("close", { view_id: ui.state.modals[ui.me].id });
  });
  watch();
}

start();
