"""The primary's failsafe round: POST /failsafe to every other member at once, within one dcs_timeout.

I/O only; what a promise means and when to ask is pgkeel.ha.failsafe and the rule table's business.
"""

from __future__ import annotations

import concurrent.futures
import logging

import httpx

from pgkeel.ha.config import AgentConfig

log = logging.getLogger("pgkeel.agent")


class FailsafeRound:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def _token(self) -> str | None:
        path = self.config.api_token_file
        if path is None:
            return None
        try:
            token = path.read_text().strip()
        except OSError:
            return None
        return token or None

    def ask(self, urls: dict[str, str | None], members: tuple[str, ...]) -> dict[str, str | None]:
        """member → None (promised) or why not; a member without a known API address cannot promise."""
        token = self._token()
        answers: dict[str, str | None] = {m: "no API address known for it" for m in members if not urls.get(m)}
        targets = {m: url for m in members if (url := urls.get(m))}
        if token is None:
            return {m: "no API token is configured on this node" for m in members}
        if not targets:
            return answers
        timeout = self.config.ha.dcs_timeout
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(targets))
        try:
            futures = {pool.submit(self._one, url, token, timeout): m for m, url in targets.items()}
            try:
                for fut in concurrent.futures.as_completed(futures, timeout=timeout + 0.1):
                    answers[futures[fut]] = fut.result()
            except concurrent.futures.TimeoutError:
                pass
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for m in targets:
            answers.setdefault(m, "no answer in time")
        return answers

    def _one(self, url: str, token: str, timeout: float) -> str | None:
        try:
            r = httpx.post(
                f"{url}/failsafe",
                json={"leader": self.config.name},
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
                verify=self.config.api_verify,
            )
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        if r.status_code == 200:
            return None
        try:
            return str(r.json().get("error", r.status_code))
        except ValueError:
            return f"HTTP {r.status_code}"
