"""The browser observation: one JS pass over the DOM that gives every visible interactive
element a stable `data-af-id` and returns a compact list of elements (interactive ones, headings
and text blocks); Python renders them as lines and matches them by label."""

from __future__ import annotations

import json
import re
from typing import Any

OBSERVE_JS = r"""
(opts) => {
  const clean = (s) => (s || "").replace(/\s+/g, " ").trim();
  const SKIP = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "HEAD", "META", "LINK",
                        "svg", "SVG", "IFRAME", "OBJECT", "EMBED", "CANVAS", "OPTION"]);
  const ROLES = new Set(["button", "link", "checkbox", "radio", "tab", "menuitem", "option",
    "switch", "textbox", "searchbox", "combobox", "slider", "menuitemcheckbox",
    "menuitemradio", "treeitem", "spinbutton"]);
  const NO_DESCEND = new Set(["link", "button", "textbox", "searchbox", "combobox", "checkbox",
    "radio", "slider", "switch", "file", "spinbutton"]);
  const items = [];
  const seen = new Set();
  let next = window.__afNext || 1;
  let truncated = false;

  const shown = (el) => {
    if (el.checkVisibility && !el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}))
      return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const roleOf = (el) => {
    const tag = el.tagName;
    const role = (el.getAttribute("role") || "").toLowerCase();
    if (tag === "A" && el.hasAttribute("href")) return "link";
    if (tag === "BUTTON") return "button";
    if (tag === "SELECT") return "combobox";
    if (tag === "TEXTAREA") return "textbox";
    if (tag === "INPUT") {
      const t = (el.getAttribute("type") || "text").toLowerCase();
      if (t === "hidden") return null;
      if (["button", "submit", "reset", "image"].includes(t)) return "button";
      if (t === "checkbox" || t === "radio") return t;
      if (t === "range") return "slider";
      if (t === "file") return "file";
      return "textbox";
    }
    if (ROLES.has(role)) return role === "searchbox" ? "textbox" : role;
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable))
      return "textbox";
    if (el.hasAttribute("onclick") || (el.hasAttribute("tabindex") && el.tabIndex >= 0))
      return "clickable";
    const parent = el.parentElement;
    if (getComputedStyle(el).cursor === "pointer" &&
        !(parent && getComputedStyle(parent).cursor === "pointer") && ownText(el))
      return "clickable";
    return null;
  };
  const ownText = (el) => Array.from(el.childNodes).some(
    (n) => n.nodeType === 3 && n.textContent.trim());
  const labelText = (label) => {
    const copy = label.cloneNode(true);
    copy.querySelectorAll("input, select, textarea, button").forEach((e) => e.remove());
    return clean(copy.textContent);
  };
  // visible text of a subtree, without interactive descendants (they get their own lines)
  const textOf = (el, depth) => {
    let out = "";
    for (const n of el.childNodes) {
      if (n.nodeType === 3) out += n.textContent;
      else if (n.nodeType === 1 && depth < 8 && !SKIP.has(n.tagName) && !roleOf(n) &&
               (n.checkVisibility ? n.checkVisibility({checkVisibilityCSS: true}) : true)) {
        const pad = getComputedStyle(n).display.startsWith("inline") ? "" : " ";
        out += pad + textOf(n, depth + 1) + pad;
      }
    }
    return clean(out);
  };
  const nameOf = (el, role) => {
    const aria = clean(el.getAttribute("aria-label"));
    if (aria) return aria;
    const by = el.getAttribute("aria-labelledby");
    if (by) {
      const t = clean(by.split(/\s+/).map((i) => document.getElementById(i))
        .filter(Boolean).map((e) => e.textContent).join(" "));
      if (t) return t;
    }
    if (el.labels && el.labels.length) {
      const t = clean(Array.from(el.labels).map(labelText).join(" "));
      if (t) return t;
    }
    if (el.tagName === "INPUT" && ["button", "submit", "reset"].includes(el.type))
      return clean(el.value) || el.type;
    if (role !== "textbox" && role !== "combobox") {
      const t = clean(el.innerText || el.textContent);
      if (t) return t.slice(0, opts.nameChars);
      const img = el.querySelector("img[alt]");
      if (img && clean(img.alt)) return clean(img.alt);
    }
    return clean(el.getAttribute("placeholder") || el.getAttribute("title") ||
                 el.getAttribute("alt") || el.getAttribute("name") || "");
  };
  const hrefOf = (el) => {
    const raw = el.getAttribute("href") || "";
    if (raw.startsWith("javascript:") || raw === "#") return null;
    try {
      const u = new URL(raw, location.href);
      return u.origin === location.origin ? u.pathname + u.search + u.hash : u.href;
    } catch (e) { return raw; }
  };
  const idOf = (el) => {
    let id = el.getAttribute("data-af-id");
    if (!id || seen.has(id)) { id = String(next++); el.setAttribute("data-af-id", id); }
    seen.add(id);
    return Number(id);
  };
  const interactive = (el, role) => {
    const item = {id: idOf(el), role, name: nameOf(el, role)};
    if (el.disabled || el.getAttribute("aria-disabled") === "true") item.disabled = true;
    if (role === "link") item.href = hrefOf(el);
    if (role === "checkbox" || role === "radio" || role === "switch")
      item.checked = el.tagName === "INPUT" ? el.checked
                                             : el.getAttribute("aria-checked") === "true";
    if (role === "textbox") {
      const value = el.tagName === "INPUT" || el.tagName === "TEXTAREA" ? el.value
                                                                         : el.innerText;
      item.value = el.type === "password" && value ? "*".repeat(value.length) : clean(value);
      if (el.type === "password") item.password = true;
    }
    if (el.tagName === "SELECT") {
      item.options = Array.from(el.options).map((o) => clean(o.label || o.text));
      item.selected = Array.from(el.selectedOptions).map((o) => clean(o.label || o.text));
    }
    return item;
  };
  const walk = (root, covered) => {
    for (const el of root.children) {
      if (items.length >= opts.maxItems) { truncated = true; return; }
      if (SKIP.has(el.tagName)) continue;
      const style = getComputedStyle(el);
      if (style.display === "contents") { walk(el, covered); continue; }
      if (!shown(el)) {
        if (style.display !== "none" && style.visibility !== "hidden") walk(el, covered);
        continue;
      }
      const role = roleOf(el);
      if (role) {
        items.push(interactive(el, role));
        if (!NO_DESCEND.has(role)) walk(el, true);
      } else if (/^H[1-6]$/.test(el.tagName) || el.getAttribute("role") === "heading") {
        const text = textOf(el, 0);
        if (text) items.push({role: "heading", text: text.slice(0, opts.textChars)});
        walk(el, true);
      } else if (el.tagName === "TR") {
        const cells = Array.from(el.cells).map((c) => textOf(c, 0)).filter(Boolean);
        const row = cells.join(" | ").slice(0, opts.textChars);
        if (cells.length) items.push({role: "row", text: row});
        walk(el, true);
      } else if (el.tagName === "LABEL" && el.control) {
        walk(el, true);
      } else if (!covered && ownText(el)) {
        const text = textOf(el, 0);
        if (/[\p{L}\p{N}]/u.test(text))
          items.push({role: "text", text: text.slice(0, opts.textChars)});
        walk(el, true);
      } else {
        walk(el, covered);
      }
      if (el.shadowRoot) walk(el.shadowRoot, covered);
    }
  };
  if (document.body) walk(document.body, false);
  window.__afNext = next;
  const doc = document.scrollingElement || document.documentElement;
  return {url: location.href, title: document.title, items, truncated,
          scrollY: Math.round(window.scrollY), viewport: window.innerHeight,
          height: doc ? doc.scrollHeight : 0};
}
"""


def render_item(item: dict[str, Any]) -> str:
    """One observation line."""
    role = item["role"]
    if "id" not in item:
        return f"{role} {_q(item.get('text', ''))}"
    line = f"[{item['id']}] {role} {_q(item.get('name', ''))}"
    if role == "link" and item.get("href"):
        line += f" -> {item['href']}"
    if item.get("password"):
        line += " password"
    if "value" in item:
        line += f" value={_q(item['value'][:200])}"
    if "checked" in item:
        line += f" checked={'true' if item['checked'] else 'false'}"
    if "options" in item:
        options = item["options"]
        shown = ", ".join(options[:20]) + (
            f", …{len(options) - 20} more" if len(options) > 20 else ""
        )
        line += f" options=[{shown}] selected={', '.join(item['selected']) or '-'}"
    if item.get("disabled"):
        line += " disabled"
    return line


def match_label(
    items: list[dict[str, Any]], label: str, prefer: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """The interactive element whose name matches `label` ("A|B" tries alternatives): exact,
    then prefix, then substring, case-insensitive; among the `prefer`red roles first."""
    alternatives = [_norm(a) for a in label.split("|") if a.strip()]
    candidates = [i for i in items if "id" in i]
    groups = [
        [i for i in candidates if i["role"] in prefer],
        [i for i in candidates if i["role"] not in prefer],
    ]
    tests = (str.__eq__, str.startswith, lambda name, alt: alt in name)
    for group in groups:
        for test in tests:
            for item in group:
                name = _norm(item.get("name", ""))
                if any(test(name, alt) for alt in alternatives):
                    return item
    return None


def match_option(options: list[list[str]], wanted: str) -> int | None:
    wanted_n = _norm(wanted)
    for test in (lambda v, lab: _norm(lab) == wanted_n, lambda v, lab: _norm(v) == wanted_n):
        for i, (value, label) in enumerate(options):
            if test(value, label):
                return i
    partial = [i for i, (_, label) in enumerate(options) if wanted_n and wanted_n in _norm(label)]
    return partial[0] if len(partial) == 1 else None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
