// Block Kit → DOM, for messages, modals and the App Home tab.
//
// ctx: { users: Map, channels: Map, usergroups: {}, me, surface: "message"|"modal"|"home",
//        onButton(element, blockId, node), onSelect(element, blockId, option, node),
//        errors: {block_id: text} }

import { escapeHtml, plainText, textObject } from "./mrkdwn.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "html") node.innerHTML = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const label = (obj) => obj?.text ?? "";

export function renderBlocks(blocks, ctx) {
  const root = h("div", { class: "blocks" });
  for (const block of blocks || []) {
    const node = renderBlock(block, ctx);
    if (node) {
      node.dataset.blockId = block.block_id ?? "";
      node.dataset.blockType = block.type;
      root.append(node);
    }
  }
  return root;
}

function renderBlock(block, ctx) {
  switch (block.type) {
    case "header":
      return h("div", { class: "bk-header", html: plainText(block.text) });
    case "section":
      return section(block, ctx);
    case "context":
      return h("div", { class: "bk-context" }, (block.elements || []).map((el) =>
        el.type === "image"
          ? h("img", { class: "bk-context-img", src: safeSrc(el.image_url), alt: el.alt_text || "" })
          : h("span", { class: "bk-context-text", html: textObject(el, ctx) })));
    case "divider":
      return h("hr", { class: "bk-divider" });
    case "actions":
      return h("div", { class: "bk-actions" },
        (block.elements || []).map((el) => interactive(el, block.block_id, ctx)));
    case "image":
      return h("figure", { class: "bk-image" },
        block.title ? h("figcaption", { html: plainText(block.title) }) : null,
        h("img", { src: safeSrc(block.image_url), alt: block.alt_text || "", loading: "lazy" }));
    case "input":
      return input(block, ctx);
    case "rich_text":
      return h("div", { class: "bk-section-text", html: richText(block, ctx) });
    case "file":
      return h("div", { class: "bk-unsupported" }, `📎 file ${block.external_id || ""}`);
    default:
      return h("div", { class: "bk-unsupported" }, `[${block.type} block]`);
  }
}

function section(block, ctx) {
  const body = h("div", { class: "bk-section-body" });
  if (block.text) body.append(h("div", { class: "bk-section-text", html: textObject(block.text, ctx) }));
  if (block.fields?.length) {
    body.append(h("div", { class: "bk-fields" },
      block.fields.map((f) => h("div", { class: "bk-field", html: textObject(f, ctx) }))));
  }
  const node = h("div", { class: "bk-section" }, body);
  const acc = block.accessory;
  if (acc) {
    node.append(h("div", { class: "bk-accessory" }, acc.type === "image"
      ? h("img", { class: "bk-accessory-img", src: safeSrc(acc.image_url), alt: acc.alt_text || "" })
      : interactive(acc, block.block_id, ctx)));
  }
  return node;
}

function interactive(el, blockId, ctx) {
  if (el.type === "button") {
    const text = label(el.text);
    const cls = ["bk-btn", el.style === "primary" ? "primary" : "", el.style === "danger" ? "danger" : ""];
    const node = h("button", {
      type: "button", class: cls.join(" ").trim(), "data-testid": `button-${text}`,
      "data-action-id": el.action_id, title: el.url || undefined, html: plainText(el.text),
    });
    node.addEventListener("click", () => {
      if (el.url) window.open(el.url, "_blank", "noopener");
      ctx.onButton?.(el, blockId, node);
    });
    return node;
  }
  if (el.type === "static_select" || el.type === "external_select") {
    const select = h("select", {
      class: "bk-select", "data-testid": `select-${el.action_id}`, "data-action-id": el.action_id,
      "aria-label": label(el.placeholder) || el.action_id,
    });
    select.append(h("option", { value: "", disabled: true, selected: !el.initial_option },
      label(el.placeholder) || "Select an item"));
    addOptions(select, el, el.initial_option?.value);
    select.addEventListener("change", () => {
      const option = allOptions(el).find((o) => o.value === select.value);
      if (option) ctx.onSelect?.(el, blockId, option, select);
    });
    return select;
  }
  if (el.type === "overflow") {
    const select = h("select", { class: "bk-select bk-overflow", "data-testid": `overflow-${el.action_id}`,
      "aria-label": "More actions" });
    select.append(h("option", { value: "", selected: true, disabled: true }, "⋯"));
    addOptions(select, el);
    select.addEventListener("change", () => {
      const option = allOptions(el).find((o) => o.value === select.value);
      if (option) ctx.onSelect?.(el, blockId, option, select);
    });
    return select;
  }
  if (el.type === "datepicker") {
    return h("input", { type: "date", class: "bk-date", value: el.initial_date || "", disabled: true });
  }
  return h("span", { class: "bk-unsupported" }, `[${el.type}]`);
}

function allOptions(el) {
  return [...(el.options || []), ...(el.option_groups || []).flatMap((g) => g.options || [])];
}

function addOptions(select, el, selected) {
  const option = (o) => h("option", { value: o.value, selected: o.value === selected }, label(o.text));
  (el.options || []).forEach((o) => select.append(option(o)));
  (el.option_groups || []).forEach((g) =>
    select.append(h("optgroup", { label: label(g.label) }, (g.options || []).map(option))));
}

// -- modal inputs -----------------------------------------------------------------------------

function input(block, ctx) {
  const el = block.element || {};
  const id = `in-${cssId(block.block_id)}`;
  const error = ctx.errors?.[block.block_id];
  const wrap = h("div", {
    class: "bk-input" + (error ? " has-error" : ""), "data-testid": `input-block-${block.block_id}`,
  });
  wrap.append(h("label", { class: "bk-input-label", for: id, html: plainText(block.label) },
    block.optional ? h("span", { class: "optional" }, " (optional)") : null));
  wrap.append(control(el, block, id));
  if (block.hint) wrap.append(h("div", { class: "bk-input-hint", html: plainText(block.hint) }));
  wrap.append(h("div", {
    class: "bk-input-error", "data-testid": `input-error-${block.block_id}`, role: "alert",
    html: error ? escapeHtml(error) : "",
  }));
  return wrap;
}

function control(el, block, id) {
  const common = { id, "data-testid": `input-${block.block_id}`, "data-input-type": el.type,
    "data-action-id": el.action_id, placeholder: label(el.placeholder) || undefined };
  switch (el.type) {
    case "plain_text_input": {
      const attrs = { ...common, maxlength: el.max_length, class: "bk-text" };
      const node = el.multiline ? h("textarea", { ...attrs, rows: 4 }) : h("input", { ...attrs, type: "text" });
      node.value = el.initial_value ?? "";
      return node;
    }
    case "number_input": {
      const node = h("input", { ...common, type: "text", inputmode: el.is_decimal_allowed ? "decimal" : "numeric",
        class: "bk-text bk-number" });
      node.value = el.initial_value ?? "";
      return node;
    }
    case "email_text_input":
    case "url_text_input": {
      const node = h("input", { ...common, type: el.type === "email_text_input" ? "email" : "url", class: "bk-text" });
      node.value = el.initial_value ?? "";
      return node;
    }
    case "datepicker": {
      const node = h("input", { ...common, type: "date", class: "bk-text bk-date" });
      node.value = el.initial_date ?? "";
      return node;
    }
    case "static_select":
    case "external_select": {
      const node = h("select", { ...common, class: "bk-select bk-select-wide" });
      node.append(h("option", { value: "", selected: !el.initial_option },
        label(el.placeholder) || "Select an item"));
      addOptions(node, el, el.initial_option?.value);
      return node;
    }
    case "radio_buttons":
    case "checkboxes": {
      const kind = el.type === "radio_buttons" ? "radio" : "checkbox";
      const chosen = new Set([el.initial_option, ...(el.initial_options || [])].filter(Boolean).map((o) => o.value));
      return h("div", { ...common, class: "bk-choices" }, (el.options || []).map((o, i) =>
        h("label", { class: "bk-choice" },
          h("input", { type: kind, name: id, value: o.value, checked: chosen.has(o.value), id: `${id}-${i}` }),
          h("span", { html: plainText(o.text) }))));
    }
    default:
      return h("div", { ...common, class: "bk-unsupported" }, `[${el.type} input]`);
  }
}

const cssId = (s) => String(s).replace(/[^A-Za-z0-9_-]/g, "_");

// What the person entered, keyed by block_id, and the client-side errors Slack itself shows.
export function collectValues(container, blocks) {
  const values = {};
  const errors = {};
  for (const block of blocks || []) {
    if (block.type !== "input") continue;
    const el = block.element || {};
    const node = container.querySelector(`[data-testid="input-${CSS.escape(block.block_id)}"]`);
    if (!node) continue;
    let value = null;
    if (el.type === "checkboxes") {
      value = [...node.querySelectorAll("input:checked")].map((i) => i.value);
      if (!value.length) value = null;
    } else if (el.type === "radio_buttons") {
      value = node.querySelector("input:checked")?.value ?? null;
    } else {
      value = node.value === "" ? null : node.value;
    }
    if (value === null) {
      if (!block.optional) errors[block.block_id] = "Please complete this required field.";
      continue;
    }
    const problem = check(el, value);
    if (problem) { errors[block.block_id] = problem; continue; }
    values[block.block_id] = el.type === "checkboxes" ? value : String(value);
  }
  return { values, errors };
}

function check(el, value) {
  if (el.type === "plain_text_input") {
    if (el.min_length && value.length < el.min_length) return `Enter at least ${el.min_length} characters.`;
    if (el.max_length && value.length > el.max_length) return `Enter at most ${el.max_length} characters.`;
  }
  if (el.type === "number_input") {
    const n = Number(value.trim());
    if (value.trim() === "" || !Number.isFinite(n)) return "Enter a number.";
    if (!el.is_decimal_allowed && !Number.isInteger(n)) return "Enter a whole number.";
    if (el.min_value !== undefined && n < Number(el.min_value)) return `Enter a number of at least ${el.min_value}.`;
    if (el.max_value !== undefined && n > Number(el.max_value)) return `Enter a number of at most ${el.max_value}.`;
  }
  return null;
}

function richText(block, ctx) {
  const parts = [];
  const walk = (el) => {
    if (el.type === "text") parts.push(escapeHtml(el.text));
    else if (el.type === "link") parts.push(`<a href="${escapeHtml(el.url)}" target="_blank" rel="noopener">${escapeHtml(el.text || el.url)}</a>`);
    else if (el.type === "user") parts.push(`<span class="mention">@${escapeHtml(ctx.users?.get(el.user_id)?.name || el.user_id)}</span>`);
    else if (el.type === "emoji") parts.push(`:${escapeHtml(el.name)}:`);
    (el.elements || []).forEach(walk);
    if (el.type === "rich_text_section" || el.type === "rich_text_preformatted") parts.push("<br>");
  };
  (block.elements || []).forEach(walk);
  return parts.join("");
}

function safeSrc(url) {
  return /^(https?:|\/)/i.test(String(url || "")) ? url : "";
}
