"""WebArena's evaluators (web-arena-x/webarena, evaluation_harness/evaluators.py), async.

A task's `eval.eval_types` names the checks; the episode's reward is the product of their scores:

- `string_match` judges the agent's answer against `eval.reference_answers`: `exact_match`
  (both cleaned: stripped, one pair of surrounding quotes removed, lower-cased), `must_include`
  (every phrase inside the cleaned answer; a phrase "a |OR| b" accepts either; a list of one
  single-character phrase is matched against the answer's tokens, so "1" is not found in "10"),
  `fuzzy_match` (an LLM judge; the value "N/A" first tries an exact "N/A", then asks the judge
  whether the answer explains why the task is unachievable, against `eval.string_note`).
- `url_match` compares the page's URL with `eval.reference_url` ("u1 |OR| u2" alternatives)
  under `url_note` "GOLD in PRED": host and path equal (trailing slash ignored; the scheme is
  ignored, as in WebArena), and every reference query parameter present in the page's URL.
- `program_html` reads the page: each target's `url` ("last" = the current page, a URL, or
  `func:helper()` returning one) is opened, its `locator` ("" = `document.body.innerText`, a JS
  expression starting with `document.` or `[...document.`, or `func:helper(args)`) selects the
  text, and `required_contents` holds `exact_match` (a string) or `must_include` (a list).

Differences from WebArena, on purpose: helpers come from a registry (`HELPERS`, extended with
`@helper`) and their arguments are parsed as Python literals, never `eval`ed; program_html waits
for the page's load event instead of sleeping 3 s; an empty locator reads the body's text rather
than the raw HTML; a base path must equal the reference's (WebArena tests `ref in pred` on
strings). No LLM is ever called unless a `judge` is passed; a task that needs one without it is a
ConfigError.
"""

from __future__ import annotations

import ast
import collections
import html
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from agentforge.errors import ConfigError
from agentforge.evals.envs.base import Evaluation

if TYPE_CHECKING:
    from playwright.async_api import Page

OR = " |OR| "
EVAL_TYPES = ("string_match", "url_match", "program_html")

# judge(kind, intent=, reference=, prediction=) -> score in [0, 1], sync or async;
# kind is "fuzzy_match" (same meaning as the reference?) or "ua_match" (does the answer say
# the task is unachievable for the reason in the reference?)
Judge = Callable[..., float | Awaitable[float]]


@dataclass(frozen=True)
class HelperContext:
    """What a `func:` helper sees: the page and the site placeholders."""

    page: Page
    placeholders: Mapping[str, str]


Helper = Callable[..., Awaitable[str]]
HELPERS: dict[str, Helper] = {}


def helper(fn: Helper) -> Helper:
    """Register `fn(ctx, *args)` as a `func:` helper under its own name."""
    HELPERS[fn.__name__] = fn
    return fn


# --- string_match -------------------------------------------------------------------------------


def clean_answer(answer: str) -> str:
    answer = answer.strip()
    if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "'\"":
        answer = answer[1:-1]
    return answer.lower()


def exact_match(ref: str, pred: str) -> float:
    return float(clean_answer(pred) == clean_answer(ref))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def must_include(ref: str, pred: str, *, tokenize: bool = False) -> float:
    """`ref` (or one of its " |OR| " alternatives) inside `pred`; with `tokenize`, a
    single-character reference must be a whole token of the answer."""
    clean_pred = clean_answer(pred)
    for alternative in ref.split(OR):
        clean_ref = clean_answer(alternative)
        if tokenize and len(clean_ref) == 1:
            if clean_ref in _tokens(clean_pred):
                return 1.0
        elif clean_ref in clean_pred:
            return 1.0
    return 0.0


async def _ask(judge: Judge | None, kind: str, *, intent: str, reference: str,
               prediction: str) -> float:
    if judge is None:
        raise ConfigError(
            f"this task's {kind} needs an LLM judge: pass judge= to evaluate_task",
            kind=kind,
        )
    score = judge(kind, intent=intent, reference=reference, prediction=prediction)
    if inspect.isawaitable(score):
        score = await score
    return float(score)


async def string_match(task: Mapping[str, Any], answer: str,
                       judge: Judge | None = None) -> tuple[float, list[dict[str, Any]]]:
    """The answer's score against `eval.reference_answers`, and one record per check."""
    spec = task["eval"]
    pred = clean_answer(answer)
    intent = task.get("intent", "")
    score, checks = 1.0, []
    for approach, value in (spec.get("reference_answers") or {}).items():
        if approach == "exact_match":
            part = exact_match(value, pred)
            checks.append({"approach": approach, "reference": value, "score": part})
            score *= part
        elif approach == "must_include":
            for phrase in value:
                part = must_include(phrase, pred, tokenize=len(value) == 1)
                checks.append({"approach": approach, "reference": phrase, "score": part})
                score *= part
        elif approach == "fuzzy_match":
            score = await _fuzzy(value, pred, spec, intent, judge, score, checks)
        else:
            raise ConfigError(f"unknown reference_answers approach {approach!r}")
    return score, checks


async def _fuzzy(value: Any, pred: str, spec: Mapping[str, Any], intent: str,
                 judge: Judge | None, score: float, checks: list[dict[str, Any]]) -> float:
    if value == "N/A":
        score *= exact_match("N/A", pred)
        checks.append({"approach": "exact_match", "reference": "N/A", "score": score})
        if score != 1.0:  # as WebArena: the judge's verdict replaces the score
            score = await _ask(judge, "ua_match", intent=intent,
                               reference=spec.get("string_note", ""), prediction=pred)
            checks.append({"approach": "ua_match", "reference": spec.get("string_note", ""),
                           "score": score})
        return score
    for reference in value:
        if not pred:  # WebArena: the judge misreads blank answers
            part = 1.0 if not reference else 0.0
        else:
            part = await _ask(judge, "fuzzy_match", intent=intent, reference=reference,
                              prediction=pred)
        checks.append({"approach": "fuzzy_match", "reference": reference, "score": part})
        score *= part
    return score


# --- url_match ----------------------------------------------------------------------------------


def _parse_url(url: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(url.strip())
    return (parts.netloc + parts.path).rstrip("/"), parse_qs(parts.query)


def url_match(reference_url: str, page_url: str, url_note: str = "GOLD in PRED") -> float:
    """1.0 when `page_url` matches one of the reference's base paths and includes, for every
    reference query parameter, one of the values the alternatives give it."""
    if url_note != "GOLD in PRED":
        raise ConfigError(f"unknown url_note {url_note!r} (only 'GOLD in PRED' is defined)")
    bases, queries = [], collections.defaultdict(set)
    for ref in reference_url.split(OR):
        base, query = _parse_url(ref)
        bases.append(base)
        for key, values in query.items():
            queries[key].update(values)
    pred_base, pred_query = _parse_url(page_url)
    score = float(pred_base in bases)
    for key, values in queries.items():
        score *= float(any(v in pred_query.get(key, []) for v in values))
    return score


# --- program_html -------------------------------------------------------------------------------

_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)


async def call_helper(expr: str, ctx: HelperContext) -> str:
    """Run `name(literal, …)` from the registry; `__last_url__` stands for the page's URL."""
    match = _CALL.match(expr.replace("__page__", "").replace("__last_url__", repr(ctx.page.url)))
    if match is None:
        raise ConfigError(f"not a helper call: {expr!r}")
    name, raw = match.groups()
    if name not in HELPERS:
        raise ConfigError(f"unknown program_html helper {name!r}; known: {sorted(HELPERS)}")
    args = ast.literal_eval(f"({raw},)") if raw.strip().strip(",") else ()
    return str(await HELPERS[name](ctx, *args))


async def _select(locator: str, ctx: HelperContext) -> str:
    if not locator.strip():
        return str(await ctx.page.evaluate("() => document.body ? document.body.innerText : ''"))
    if locator.startswith(("document.", "[...document.")):
        try:
            value = await ctx.page.evaluate(f"() => {locator}")
        except Exception:  # the element is missing: the page is wrong
            return ""
        return "" if value is None else str(value)
    if locator.startswith("func:"):
        return await call_helper(locator.removeprefix("func:"), ctx)
    raise ConfigError(f"unknown program_html locator {locator!r}")


async def _open(url: str, ctx: HelperContext) -> bool:
    if url.startswith("func:"):
        url = await call_helper(url.removeprefix("func:"), ctx)
    if url == "last":
        return True
    if not url:
        return False
    try:
        await ctx.page.goto(url, wait_until="load")
    except Exception:
        return False
    return True


async def program_html(targets: list[dict[str, Any]],
                       ctx: HelperContext) -> tuple[float, list[dict[str, Any]]]:
    """The product of the targets' scores, and one record per required content."""
    score, checks = 1.0, []
    for target in targets:
        url = substitute(target["url"], ctx.placeholders)
        locator = substitute(target.get("locator", ""), ctx.placeholders)
        opened = await _open(url, ctx)
        selected = html.unescape(await _select(locator, ctx)) if opened else ""
        required = target["required_contents"]
        if "exact_match" in required:
            ref = substitute(required["exact_match"], ctx.placeholders)
            part = exact_match(ref, selected)
            checks.append({"url": url, "locator": locator, "exact_match": ref, "score": part,
                           "selected": selected[:300]})
            score *= part
        elif "must_include" in required:
            for content in required["must_include"]:
                ref = substitute(content, ctx.placeholders)
                part = must_include(ref, selected)
                checks.append({"url": url, "locator": locator, "must_include": ref,
                               "score": part, "selected": selected[:300]})
                score *= part
        else:
            raise ConfigError(f"unknown required_contents {sorted(required)}")
    return score, checks


# --- entry point --------------------------------------------------------------------------------


def substitute(text: str, placeholders: Mapping[str, str]) -> str:
    for key, value in placeholders.items():
        text = text.replace(key, value)
    return text


async def evaluate_task(task: Mapping[str, Any], *, answer: str, page: Page,
                        placeholders: Mapping[str, str], judge: Judge | None = None
                        ) -> Evaluation:
    """Run the task's `eval.eval_types` in order on the final page and the agent's answer;
    reward is their product, success is reward >= 1."""
    spec = task["eval"]
    final_url = page.url  # program_html navigates away: url_match sees the agent's page
    ctx = HelperContext(page=page, placeholders=placeholders)
    reward, details = 1.0, {"answer": answer, "final_url": final_url}
    for eval_type in spec["eval_types"]:
        if eval_type == "string_match":
            score, checks = await string_match(task, answer, judge)
            details[eval_type] = {"score": score, "checks": checks}
        elif eval_type == "url_match":
            reference = substitute(spec["reference_url"], placeholders)
            score = url_match(reference, final_url, spec.get("url_note") or "GOLD in PRED")
            details[eval_type] = {"score": score, "reference_url": reference}
        elif eval_type == "program_html":
            score, checks = await program_html(spec["program_html"], ctx)
            details[eval_type] = {"score": score, "checks": checks}
        else:
            raise ConfigError(f"eval_type {eval_type!r} is not supported; use {EVAL_TYPES}")
        reward *= score
    return Evaluation(reward=reward, success=reward >= 1.0, details=details)


# --- helpers for the local shop (evals/envs/shop) -----------------------------------------------


@helper
async def shop_latest_order_url(ctx: HelperContext) -> str:
    """The URL of the signed-in customer's most recent order in the shop (`__SHOP__`), read
    from their order history; "" when there is none."""
    await ctx.page.goto(f"{ctx.placeholders['__SHOP__']}/account/orders", wait_until="load")
    href = await ctx.page.evaluate(
        "() => { const a = document.querySelector('tr.order-row a'); return a ? a.href : ''; }"
    )
    return str(href or "")


@helper
async def shop_cart_quantity(ctx: HelperContext, sku: str) -> str:
    """How many of product `sku` are in the browser's shop cart ("0" when none)."""
    await ctx.page.goto(f"{ctx.placeholders['__SHOP__']}/cart", wait_until="load")
    value = await ctx.page.evaluate(
        "(sku) => { const i = document.querySelector(`tr[data-sku=\"${sku}\"] input[name=qty]`);"
        " return i ? i.value : '0'; }",
        sku,
    )
    return str(value)
