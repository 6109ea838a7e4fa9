"""The UI's mrkdwn and Block Kit rendering, run in headless Chromium against its own modules."""

from __future__ import annotations

import pytest

from sandbox.slack import SlackStandin
from tests.browser.test_demo_ui import CHROMIUM, CHROMIUM_ARGS, _require_chromium

pytestmark = pytest.mark.browser

CTX = """{users: new Map([["U1", {id: "U1", name: "priya.planner", real_name: "Priya"}]]),
          channels: new Map([["C1", {id: "C1", name: "planning"}]]),
          usergroups: {S0LOGISTICS: ["U2"]}, me: "U1"}"""


@pytest.fixture(scope="module")
def page():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with SlackStandin("xoxb-render", "secret", channels=["C1"], users=["U1"]) as slack, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(slack.url + "/ui/app.css")  # same origin as the modules, without the app
        yield page
        browser.close()


def md(page, text: str) -> str:
    return page.evaluate(
        f"async (t) => (await import('/ui/mrkdwn.js')).mrkdwn(t, {CTX})", text)


@pytest.mark.parametrize(("text", "html"), [
    ("*bold* and _italic_ and ~gone~", "<strong>bold</strong> and <em>italic</em> and <del>gone</del>"),
    ("use `rec_actions:7` here", 'use <code>rec_actions:7</code> here'),
    ("snake_case_name stays", "snake_case_name stays"),
    ("<https://example.com/a?b=1&amp;c=2|the docs>",
     ('<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">'
      "the docs</a>")),
    ("<#C1>", '<span class="mention channel-link">#planning</span>'),
    ("line one\nline two", "line one<br>line two"),
    ("12:30:45 :not_an_emoji:", "12:30:45 :not_an_emoji:"),
])
def test_mrkdwn_basics(page, text, html):
    assert md(page, text) == html


def test_mentions_show_names_and_highlight_the_acting_user(page):
    html = md(page, "*For <@U1> · <!subteam^S0LOGISTICS> (logistics)*")
    assert html.startswith("<strong>For ") and html.endswith("(logistics)</strong>")
    assert '@priya.planner</span>' in html and "mention-me" in html.split("@priya")[0]
    assert ">@logistics</span>" in html
    assert ">@ops-leads</span>" in md(page, "<!subteam^S0X|@ops-leads>")


def test_emoji_shortcodes_become_pictures(page):
    html = md(page, ":white_check_mark: Executed · :rotating_light: :thumbsup:")
    assert html.count('class="emoji"') == 2 and "<svg" in html
    assert "👍" in html and ":white_check_mark:" not in html.split('title=":white_check_mark:"')[1]


def test_nothing_from_a_message_becomes_markup(page):
    html = md(page, '&lt;img src=x onerror=alert(1)&gt; <javascript:alert(1)|click> "q" \'s\'')
    assert "<img" not in html and "<a " not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&quot;q&quot;" in html
    assert page.evaluate(
        "async () => (await import('/ui/mrkdwn.js')).plainText({type: 'plain_text', "
        "text: '<b>x</b> :x:', emoji: false})") == "&lt;b&gt;x&lt;/b&gt; :x:"


def test_blocks_render_buttons_selects_fields_and_inputs(page):
    counts = page.evaluate("""async () => {
        const {renderBlocks, collectValues} = await import('/ui/blocks.js');
        const blocks = [
          {type: "header", block_id: "h", text: {type: "plain_text", text: ":warning: Head"}},
          {type: "section", block_id: "s", text: {type: "mrkdwn", text: "*x*"},
           fields: [{type: "mrkdwn", text: "a"}, {type: "mrkdwn", text: "b"}],
           accessory: {type: "button", action_id: "more", text: {type: "plain_text", text: "More"}}},
          {type: "context", block_id: "c", elements: [{type: "mrkdwn", text: "ctx"}]},
          {type: "divider", block_id: "d"},
          {type: "image", block_id: "i", image_url: "https://example.com/x.png", alt_text: "x"},
          {type: "actions", block_id: "a", elements: [
            {type: "button", action_id: "ok", style: "primary", text: {type: "plain_text", text: "Approve"}},
            {type: "button", action_id: "no", style: "danger", text: {type: "plain_text", text: "Reject"}},
            {type: "static_select", action_id: "snooze", placeholder: {type: "plain_text", text: "Snooze"},
             options: [{text: {type: "plain_text", text: "1 h"}, value: "1h"}]}]},
          {type: "input", block_id: "reason", label: {type: "plain_text", text: "Why?"},
           element: {type: "plain_text_input", action_id: "r", multiline: true}},
          {type: "input", block_id: "0.qty", label: {type: "plain_text", text: "Qty"},
           element: {type: "number_input", action_id: "value", is_decimal_allowed: false,
                     min_value: "0", initial_value: "5"}},
          {type: "input", block_id: "0.date", optional: true, label: {type: "plain_text", text: "Date"},
           element: {type: "datepicker", action_id: "value", initial_date: "2026-11-30"}},
        ];
        const clicked = [];
        const root = renderBlocks(blocks, {onButton: (el) => clicked.push(el.action_id)});
        document.body.replaceChildren(root);
        root.querySelector('[data-testid="button-Approve"]').click();
        const first = collectValues(root, blocks);
        root.querySelector('[data-testid="input-reason"]').value = "promo cancelled";
        root.querySelector('[data-testid="input-0.qty"]').value = "2.5";
        const second = collectValues(root, blocks);
        root.querySelector('[data-testid="input-0.qty"]').value = "7";
        const third = collectValues(root, blocks);
        return {
          primary: root.querySelectorAll('.bk-btn.primary').length,
          danger: root.querySelectorAll('.bk-btn.danger').length,
          fields: root.querySelectorAll('.bk-field').length,
          textarea: root.querySelector('[data-testid="input-reason"]').tagName,
          select: root.querySelectorAll('[data-testid="select-snooze"] option').length,
          images: root.querySelectorAll('img').length, clicked,
          first, second, third,
        };
    }""")
    assert counts["primary"] == 1 and counts["danger"] == 1 and counts["fields"] == 2
    assert counts["textarea"] == "TEXTAREA" and counts["select"] == 2 and counts["images"] == 1
    assert counts["clicked"] == ["ok"]
    assert counts["first"]["errors"] == {"reason": "Please complete this required field."}
    assert counts["second"]["errors"] == {"0.qty": "Enter a whole number."}
    assert counts["third"] == {"values": {"reason": "promo cancelled", "0.qty": "7",
                                          "0.date": "2026-11-30"}, "errors": {}}
