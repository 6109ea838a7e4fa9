// Slack's mrkdwn → safe HTML: *bold*, _italic_, ~strike~, `code`, ```blocks```, > quotes,
// <url|links>, <@U…> mentions, <!subteam^S…> group mentions, <#C…> channels, <!date…>,
// and :emoji: shortcodes. Everything is HTML-escaped first; markup is added only by us.

import { emojiHtml } from "./emoji.js";

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

// Slack escapes &, < and > in message text; undo that before escaping for HTML.
const unslack = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

const SAFE_URL = /^(https?:|mailto:)/i;

// A group's handle when the mention carries none: S0LOGISTICS → @logistics.
export function groupHandle(id) {
  return "@" + String(id).replace(/^S0*/, "").toLowerCase().replace(/_/g, "-");
}

function token(inner, ctx) {
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const user = ctx.users?.get(id);
    const name = label || (user ? user.name : id);
    const me = id === ctx.me ? " mention-me" : "";
    return `<span class="mention${me}" data-user="${escapeHtml(id)}" title="${escapeHtml(
      user?.real_name || id)}">@${escapeHtml(unslack(name).replace(/^@/, ""))}</span>`;
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    const ch = ctx.channels?.get(id);
    return `<span class="mention channel-link">#${escapeHtml(unslack(label || ch?.name || id))}</span>`;
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice("!subteam^".length);
    const handle = label ? unslack(label) : groupHandle(id);
    const members = ctx.usergroups?.[id] || [];
    const me = members.includes(ctx.me) ? " mention-me" : "";
    return `<span class="mention group-mention${me}" data-group="${escapeHtml(id)}">${escapeHtml(
      handle.startsWith("@") ? handle : "@" + handle)}</span>`;
  }
  if (target.startsWith("!date^")) {
    return escapeHtml(unslack(label || target));
  }
  if (target.startsWith("!")) {
    const word = target.slice(1).split("^")[0];
    return `<span class="mention mention-me">@${escapeHtml(label || word)}</span>`;
  }
  const url = unslack(target);
  if (SAFE_URL.test(url)) {
    return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(
      unslack(label || target))}</a>`;
  }
  return escapeHtml(`<${unslack(inner)}>`);
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

// Word-ish boundaries for *, _ and ~ as Slack applies them.
const BOUND_L = "(^|[\\s(\\[{\"'“‘\\u0001])";
const BOUND_R = "(?=$|[\\s)\\]}.,;:!?\"'”’\\u0001-])";
const inline = (ch, tag) => new RegExp(
  `${BOUND_L}\\${ch}(?=\\S)([^\\${ch}\\n]*?\\S)\\${ch}${BOUND_R}`, "g");
const RULES = [inline("*", "b"), inline("_", "i"), inline("~", "s")];
const TAGS = ["strong", "em", "del"];

export function mrkdwn(text, ctx = {}) {
  const stash = [];
  const keep = (html) => `\u0001${stash.push(html) - 1}\u0001`;
  let s = String(text ?? "");
  // Code first: nothing inside it is formatted.
  s = s.replace(/```([\s\S]*?)```/g, (_, code) =>
    keep(`<pre class="code-block">${escapeHtml(unslack(code.replace(/^\n/, "")))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(unslack(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => keep(token(inner, ctx)));
  s = escapeHtml(unslack(s));
  s = s.replace(/:([a-z0-9_+\-]{1,40}):/g, (whole, name) => {
    const html = emojiHtml(name);
    return html ? keep(html) : whole;
  });
  RULES.forEach((rule, i) => {
    for (let guard = 0; guard < 3; guard++) {  // nested, e.g. *_both_*
      const next = s.replace(rule, (_, pre, inner) => `${pre}<${TAGS[i]}>${inner}</${TAGS[i]}>`);
      if (next === s) break;
      s = next;
    }
  });
  // Quotes: lines starting with "> " (escaped by now).
  s = s.split("\n").map((line) => line.startsWith("&gt; ") || line === "&gt;"
    ? `<span class="quote">${line.replace(/^&gt; ?/, "")}</span>` : line).join("\n");
  s = s.replace(/\n/g, "<br>");
  return s.replace(/\u0001(\d+)\u0001/g, (_, i) => stash[Number(i)]);
}

// plain_text objects: escaped, with emoji when emoji is not false.
export function plainText(obj) {
  const text = escapeHtml(obj?.text ?? "");
  if (obj && obj.emoji === false) return text;
  return text.replace(/:([a-z0-9_+\-]{1,40}):/g, (whole, name) => emojiHtml(name) ?? whole);
}

export function textObject(obj, ctx) {
  if (!obj) return "";
  if (typeof obj === "string") return mrkdwn(obj, ctx);
  return obj.type === "mrkdwn" ? mrkdwn(obj.text, ctx) : plainText(obj);
}
