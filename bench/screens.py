"""Screenshots of every organization page at 375 and 1440 px, as the admin, the manager and a developer, to look at.

`python -m bench.screens` reuses bench/org.py's database (bench/results/org-<size>.db, 200,000
executions unless `--executions` says otherwise), adds what the pages with an id need (the
dashboard of every widget type, an alert rule, a finished export), starts the real server and
saves one full-page PNG per page, role and width in bench/results/screens/ (git-ignored):
<role>-<page>-<width>.png. A page a role may not open is left out. Each page is also checked
for what a screenshot shows badly: the page scrolling sideways, a table wider than its box
(it scrolls, but a phone shows part of it), an element sticking out of the window; those are
printed beside its name.
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import org as org_bench
from bench import org_pages
from bench.stats import size_label
from tests.support import TEST_JWT_SECRET, Server, chromium, full_page_screenshot, set_width
from weather_metrics import create_app
from weather_metrics.alerts import rules as alerts
from weather_metrics.reports import jobs as reports
from weather_metrics.store.db import database
from weather_metrics.store.models import AlertRule, ReportJob, User
from weather_metrics.web.api.alert_schemas import RuleCreateSchema
from weather_metrics.web.pages.sessions import SESSION_COOKIE

WIDTHS = (375, 1440)
RULE: dict[str, Any] = {"name": "Errors above 5 %", "metric": "error_rate", "scope": {"type": "organization"}}
RULE.update(comparison="gt", threshold=5, window_minutes=60, severity="high", cooldown_minutes=30)
# What sticks out: the page wider than the window, a table wider than its scrolling box, any element past the edge.
OVERFLOW = """
const width = window.innerWidth;
const boxes = [...document.querySelectorAll('.table-scroll')].filter(b => b.scrollWidth > b.clientWidth + 1);
const out = [...document.querySelectorAll('body *')].filter(e => {
  const r = e.getBoundingClientRect();
  if (r.width === 0 || r.right <= width + 1) return false;
  for (let p = e.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX) && p !== document.body) return false;
  }
  return true;
}).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
  + (e.className ? '.' + String(e.className).split(' ')[0] : ''));
return {page: document.documentElement.scrollWidth, tables: boxes.length, out: out.slice(0, 5)};
"""


def extras(path: Path) -> dict[str, str]:
    """An organization alert rule and a finished export of the admin's: ids for the pages that show one."""
    app = create_app({"database": str(path), "jwt_secret": TEST_JWT_SECRET, "log_level": "warning"})
    state = app.extensions["weather_metrics"]
    try:
        with app.app_context():
            admin = User.get(User.role == "admin")
            rule = AlertRule.get_or_none(AlertRule.name == RULE["name"])
            if rule is None:
                rule = alerts.create_rule(admin, RuleCreateSchema().load(RULE), int(time.time()))
            job = ReportJob.get_or_none((ReportJob.user == admin.id) & (ReportJob.status == "done"))
            if job is None:
                job = reports.create_job(admin, "teams", "csv", {}, datetime.now(UTC), 86400)
                deadline = time.monotonic() + 300
                while ReportJob.get_by_id(job.id).status != "done" and time.monotonic() < deadline:
                    state.reports.run_once(datetime.now(UTC))
            return {"rule": str(rule.id), "job": str(job.id)}
    finally:
        state.close()
        database.close_all()


def pages(board: str, rule: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Name -> (path, roles that may open it)."""
    everyone, leaders, admin = org_pages.ROLES, ("admin", "manager"), ("admin",)
    return {
        "account": ("/account", everyone),
        "dashboards": ("/dashboards", everyone),
        "dashboard": (f"/dashboards/{board}", everyone),
        "dashboard-edit": (f"/dashboards/{board}/edit", admin),
        "widget-edit": (f"/dashboards/{board}/widgets/per-day", admin),
        "dashboard-delete": (f"/dashboards/{board}/delete", admin),
        "explore-agents": ("/explore/agents?aggregation=day", everyone),
        "explore-productivity": ("/explore/productivity", everyone),
        "explore-trends": ("/explore/trends", everyone),
        "explore-teams": ("/explore/teams", leaders),
        "alerts": ("/alerts", leaders),
        "alerts-history": ("/alerts/history", leaders),
        "alert-new": ("/alerts/new", leaders),
        "alert-edit": (f"/alerts/{rule}/edit", admin),
        "alert-delete": (f"/alerts/{rule}/delete", admin),
        "exports": ("/exports", everyone),
        "admin-users": ("/admin/users", leaders),
        "admin-teams": ("/admin/teams", leaders),
        "admin-keys": ("/admin/keys", admin),
        "admin-organization": ("/admin/organization", leaders),
    }


def shoot(server: Server, cookies: dict[str, str], found: dict[str, tuple[str, tuple[str, ...]]], out: Path) -> int:
    """Every page of every role at both widths; prints each file and what sticks out; the number that do."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(width=1440, height=900)
    flagged = 0
    try:
        for role in org_pages.ROLES:
            driver.get(server.url + "/static/favicon.svg")
            driver.delete_all_cookies()
            driver.add_cookie({"name": SESSION_COOKIE, "value": cookies[role], "path": "/"})
            for width in WIDTHS:
                set_width(driver, width)  # 375: a phone (touch, the viewport tag obeyed), as the browser tests
                for name, (path, roles) in found.items():
                    if role not in roles:
                        continue
                    driver.get(server.url + path)
                    WebDriverWait(driver, 60).until(lambda d: d.execute_script(org_pages.DRAWN)["ready"])
                    time.sleep(0.3)  # chart animations end
                    shot = out / f"{role}-{name}-{width}.png"
                    full_page_screenshot(driver, shot, width)
                    seen = driver.execute_script(OVERFLOW)
                    wide = seen["page"] > width or seen["tables"] or seen["out"]
                    flagged += bool(wide)
                    print(f"{shot.relative_to(org_bench.ROOT)}  {'sticks out: ' + repr(seen) if wide else ''}")
    finally:
        driver.quit()
    return flagged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.screens", description=__doc__)
    parser.add_argument("--executions", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--database", type=Path, help="default bench/results/org-<size>.db")
    parser.add_argument("--out", type=Path, default=org_bench.RESULTS / "screens")
    parser.add_argument("--keep", action="store_true", help="reuse the database even if other code built it")
    parser.add_argument("--only", help="a regular expression: only the pages whose name matches")
    args = parser.parse_args(argv)
    args.rebuild, args.seed = False, 1
    args.database = args.database or org_bench.RESULTS / f"org-{size_label(args.executions)}.db"
    cookies, board = org_pages.prepare(args)
    ids = extras(args.database)
    found = {k: v for k, v in pages(board, ids["rule"]).items() if not args.only or re.search(args.only, k)}
    args.out.mkdir(parents=True, exist_ok=True)
    with Server(args.database, rate_limit_per_minute=1_000_000_000) as server:
        flagged = shoot(server, cookies, found, args.out)
    print(f"\n{flagged} screenshots with something sticking out; all in {args.out}")


if __name__ == "__main__":
    main()
