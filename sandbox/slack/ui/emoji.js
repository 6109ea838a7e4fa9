// Emoji shortcodes → HTML. The ones alignbot uses are drawn as small inline SVGs so they look the
// same on every machine (a headless browser often has no colour emoji font); other common ones
// are Unicode characters; unknown shortcodes stay as text, as Slack shows them.

const svg = (body, label) =>
  `<svg class="emoji-svg" viewBox="0 0 16 16" role="img" aria-label="${label}">${body}</svg>`;
const circle = (fill, stroke = "none") =>
  `<circle cx="8" cy="8" r="6.5" fill="${fill}" stroke="${stroke}" stroke-width="1"/>`;
const tile = (fill, inner) => `<rect x="1" y="1" width="14" height="14" rx="3" fill="${fill}"/>${inner}`;
const CHECK = '<path d="M4.2 8.4l2.5 2.5 5.1-5.6" fill="none" stroke="#fff" stroke-width="2.1" stroke-linecap="round" stroke-linejoin="round"/>';

const SVG = {
  red_circle: circle("#DD2E44"),
  large_orange_circle: circle("#F4900C"),
  large_yellow_circle: circle("#FDCB58"),
  large_green_circle: circle("#78B159"),
  large_blue_circle: circle("#55ACEE"),
  large_purple_circle: circle("#AA8ED6"),
  white_circle: circle("#fff", "#b9b9b9"),
  black_circle: circle("#31373D"),
  white_check_mark: tile("#77B255", CHECK),
  ballot_box_with_check: tile("#3B88C3", CHECK),
  heavy_check_mark: '<path d="M3 8.6l3.2 3.2L13 4.6" fill="none" stroke="#31373D" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/>',
  x: '<path d="M3.5 3.5l9 9M12.5 3.5l-9 9" stroke="#DD2E44" stroke-width="2.8" stroke-linecap="round"/>',
  heavy_multiplication_x: '<path d="M3.5 3.5l9 9M12.5 3.5l-9 9" stroke="#31373D" stroke-width="2.6" stroke-linecap="round"/>',
  no_entry: circle("#DD2E44") + '<rect x="3.8" y="6.8" width="8.4" height="2.4" rx="1" fill="#fff"/>',
  warning: '<path d="M8 1.6l6.8 12.2H1.2z" fill="#FFCC4D" stroke="#E0A800" stroke-width=".6" stroke-linejoin="round"/><rect x="7.2" y="5.4" width="1.6" height="4.6" rx=".8" fill="#31373D"/><circle cx="8" cy="11.8" r=".95" fill="#31373D"/>',
  rotating_light: '<path d="M3.6 12V8.4a4.4 4.4 0 0 1 8.8 0V12z" fill="#DD2E44"/><path d="M5.6 8.6a2.4 2.4 0 0 1 2.4-2.4" stroke="#fff" stroke-width="1.1" fill="none" stroke-linecap="round" opacity=".8"/><rect x="2.4" y="12" width="11.2" height="2.6" rx=".8" fill="#99AAB5"/><path d="M8 .8v1.8M2.4 3l1.3 1.3M13.6 3l-1.3 1.3" stroke="#F4900C" stroke-width="1.2" stroke-linecap="round"/>',
  hourglass: '<path d="M4 2h8M4 14h8M5 2.5c0 3 3 3.6 3 5.5s-3 2.5-3 5.5M11 2.5c0 3-3 3.6-3 5.5s3 2.5 3 5.5" fill="none" stroke="#8A4B38" stroke-width="1.3" stroke-linecap="round"/><path d="M6 13c.5-2 1.4-2.6 2-3 .6.4 1.5 1 2 3z" fill="#FFAC33"/>',
  hourglass_flowing_sand: '<path d="M4 2h8M4 14h8M5 2.5c0 3 3 3.6 3 5.5s-3 2.5-3 5.5M11 2.5c0 3-3 3.6-3 5.5s3 2.5 3 5.5" fill="none" stroke="#8A4B38" stroke-width="1.3" stroke-linecap="round"/><path d="M6.2 4.2h3.6C9.4 5.6 8.5 6 8 6.6 7.5 6 6.6 5.6 6.2 4.2zM6 13c.5-1.4 1.4-1.8 2-2 .6.2 1.5.6 2 2z" fill="#FFAC33"/>',
  alarm_clock: '<circle cx="8" cy="9" r="5.4" fill="#fff" stroke="#DD2E44" stroke-width="1.6"/><path d="M8 6v3.2l2 1.4" stroke="#31373D" stroke-width="1.2" fill="none" stroke-linecap="round"/><path d="M2.2 4.4l2.4-2.2M13.8 4.4l-2.4-2.2" stroke="#DD2E44" stroke-width="1.6" stroke-linecap="round"/>',
  arrows_counterclockwise: tile("#3B88C3", '<path d="M11.4 6.2A3.8 3.8 0 1 0 11.6 10" fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/><path d="M11.9 3.4v3.2H8.7" fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/>'),
  fast_forward: tile("#3B88C3", '<path d="M3.6 4.6L8 8l-4.4 3.4zM8.2 4.6L12.6 8l-4.4 3.4z" fill="#fff"/>'),
  bar_chart: '<rect x="1" y="1" width="14" height="14" rx="2" fill="#fff" stroke="#CCD6DD"/><rect x="3.4" y="8" width="2.2" height="5" fill="#DD2E44"/><rect x="6.9" y="4" width="2.2" height="9" fill="#3B88C3"/><rect x="10.4" y="6.2" width="2.2" height="6.8" fill="#77B255"/>',
  zzz: '<text x="1" y="13" font-size="9" font-weight="700" fill="#3B88C3" font-family="sans-serif">z</text><text x="6" y="9" font-size="7" font-weight="700" fill="#3B88C3" font-family="sans-serif">z</text><text x="10.5" y="5.6" font-size="5.5" font-weight="700" fill="#3B88C3" font-family="sans-serif">z</text>',
  gear: '<circle cx="8" cy="8" r="4.6" fill="none" stroke="#66757F" stroke-width="2.6" stroke-dasharray="2.2 1.4"/><circle cx="8" cy="8" r="2.6" fill="none" stroke="#66757F" stroke-width="1.8"/>',
  tada: '<path d="M2 14.4L5.2 5l5.8 5.8z" fill="#FFCC4D" stroke="#F4900C" stroke-width=".8" stroke-linejoin="round"/><circle cx="11.5" cy="3" r="1" fill="#DD2E44"/><circle cx="13.4" cy="7" r=".9" fill="#55ACEE"/><circle cx="8.6" cy="2" r=".8" fill="#77B255"/><path d="M9 6.6c1-1.6 2.6-2 4.2-1.6" stroke="#AA8ED6" stroke-width="1" fill="none" stroke-linecap="round"/>',
  bell: '<path d="M4 11.5V7.4a4 4 0 0 1 8 0v4.1l1.2 1.1H2.8z" fill="#FFAC33"/><circle cx="8" cy="13.8" r="1.4" fill="#FFAC33"/>',
  information_source: tile("#3B88C3", '<circle cx="8" cy="4.6" r="1.1" fill="#fff"/><rect x="7.1" y="6.6" width="1.8" height="5.6" rx=".6" fill="#fff"/>'),
  // the demo narrator's
  clapper: '<rect x="1.5" y="6.2" width="13" height="8.3" rx="1" fill="#31373D"/><path d="M1.3 3.6l12.5-2.3.6 3.1-12.5 2.3z" fill="#31373D"/><path d="M3.6 3.2l2.3 2.5M7.2 2.5l2.3 2.5M10.8 1.9l2.3 2.5" stroke="#fff" stroke-width="1.1"/><rect x="3" y="8.6" width="10" height="1" fill="#99AAB5"/>',
  scissors: '<circle cx="4.2" cy="12" r="2.2" fill="none" stroke="#DD2E44" stroke-width="1.5"/><circle cx="11.8" cy="12" r="2.2" fill="none" stroke="#DD2E44" stroke-width="1.5"/><path d="M5.5 10.3L11.4 1.6M10.5 10.3L4.6 1.6" stroke="#8899A6" stroke-width="1.6" stroke-linecap="round"/>',
  truck: '<rect x="1" y="3.6" width="9" height="7.4" rx="1" fill="#DD2E44"/><path d="M10 6.2h2.7l2.3 2.6V11H10z" fill="#3B88C3"/><circle cx="4" cy="12" r="1.8" fill="#31373D"/><circle cx="12" cy="12" r="1.8" fill="#31373D"/>',
  chart_with_upwards_trend: '<rect x="1" y="1" width="14" height="14" rx="2" fill="#fff" stroke="#CCD6DD"/><path d="M3 12l3.4-3.8 2.4 2.1 4.2-6.1" fill="none" stroke="#DD2E44" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/>',
};
SVG.large_red_circle = SVG.red_circle;
SVG.heavy_check_mark_button = SVG.white_check_mark;
SVG.x_mark = SVG.x;

const UNICODE = {
  "+1": "👍", thumbsup: "👍", "-1": "👎", thumbsdown: "👎", eyes: "👀", rocket: "🚀",
  fire: "🔥", memo: "📝", pencil: "📝", pencil2: "✏️", calendar: "📅", date: "📅",
  truck: "🚚", package: "📦", factory: "🏭", ship: "🚢", airplane: "✈️", clock1: "🕐",
  chart_with_upwards_trend: "📈", chart_with_downwards_trend: "📉", mag: "🔍",
  bulb: "💡", link: "🔗", lock: "🔒", key: "🔑", wave: "👋", pray: "🙏", clap: "👏",
  raised_hands: "🙌", point_right: "👉", point_left: "👈", question: "❓", exclamation: "❗",
  heavy_plus_sign: "➕", heavy_minus_sign: "➖", arrow_right: "➡️", arrow_left: "⬅️",
  arrow_up: "⬆️", arrow_down: "⬇️", arrow_up_small: "🔼", arrow_down_small: "🔽",
  small_red_triangle: "🔺", small_red_triangle_down: "🔻", stopwatch: "⏱️", timer_clock: "⏲️",
  hourglass_done: "⌛", smile: "😄", slightly_smiling_face: "🙂", thinking_face: "🤔",
  sweat_smile: "😅", boom: "💥", sparkles: "✨", star: "⭐", heart: "❤️", muscle: "💪",
  speech_balloon: "💬", robot_face: "🤖", inbox_tray: "📥", outbox_tray: "📤",
  clipboard: "📋", pushpin: "📌", round_pushpin: "📍", construction: "🚧", stop_sign: "🛑",
  recycle: "♻️", moneybag: "💰", dollar: "💵", shopping_trolley: "🛒", house: "🏠",
  busts_in_silhouette: "👥", bust_in_silhouette: "👤", globe_with_meridians: "🌐",
};

export function emojiHtml(name) {
  if (Object.prototype.hasOwnProperty.call(SVG, name)) {
    return `<span class="emoji" title=":${name}:">${svg(SVG[name], name)}</span>`;
  }
  if (Object.prototype.hasOwnProperty.call(UNICODE, name)) {
    return `<span class="emoji emoji-char" title=":${name}:">${UNICODE[name]}</span>`;
  }
  return null;
}

// Replace :shortcodes: in already-escaped HTML text.
export function replaceEmoji(html) {
  return html.replace(/:([a-z0-9_+\-]{1,40}):/g, (whole, name) => emojiHtml(name) ?? whole);
}
