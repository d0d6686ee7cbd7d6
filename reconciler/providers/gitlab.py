"""GitLab REST v4: merge requests, MR notes and commit statuses of one project, addressed
by its URL-encoded `path_with_namespace`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from reconciler.core.errors import ProviderError
from reconciler.providers.base import (
    MAX_PAGES,
    STATUS_CONTEXT,
    CommentClient,
    PullRequestInfo,
    Transport,
    as_dict,
    as_id,
    as_int,
    as_list,
    check_state,
    opt_bool,
    opt_str,
    read,
    short_description,
)

STATE_MAP = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}


def parse_merge_request(data: Any) -> PullRequestInfo:
    mr = as_dict(data, "merge request")
    iid = as_int(mr.get("iid"), "merge request iid")
    what = f"MR !{iid}"
    source = as_int(mr.get("source_project_id"), f"{what} source_project_id")
    target = as_int(mr.get("target_project_id"), f"{what} target_project_id")
    labels: list[str] = []
    for label in as_list(mr.get("labels") or [], f"{what} labels"):
        # plain strings, or objects when a caller asked for with_labels_details
        name = as_dict(label, f"{what} label").get("name") if isinstance(label, dict) else label
        text = opt_str(name, f"{what} label")
        if text:
            labels.append(text)
    return PullRequestInfo(
        number=iid,
        head_ref=opt_str(mr.get("source_branch"), f"{what} source_branch"),
        head_sha=opt_str(mr.get("sha"), f"{what} sha"),
        is_fork=source != target,
        draft=opt_bool(mr.get("draft"), f"{what} draft")
        or opt_bool(mr.get("work_in_progress"), f"{what} work_in_progress"),
        labels=tuple(labels),
    )


def parse_note(data: Any) -> tuple[str, str]:
    note = as_dict(data, "note")
    return as_id(note.get("id"), "note id"), opt_str(note.get("body"), "note body") or ""


class GitLabClient(CommentClient):
    def __init__(self, http: Transport, repository: str) -> None:
        super().__init__(http)
        path = repository.strip("/")
        if not path or not ("/" in path or path.isdigit()):
            raise ProviderError(
                f"repository must be 'group/.../name' or a project id, got {repository!r}"
            )
        self.project = f"/projects/{quote(path, safe='')}"

    def _pages(self, path: str, what: str, **query: str | int) -> list[Any]:
        """Follow `X-Next-Page` (empty on the last page)."""
        items: list[Any] = []
        url = self.http.url(path, **query)
        for _ in range(MAX_PAGES):
            data, resp = self.http.json("GET", url)
            items.extend(as_list(data, what))
            next_page = resp.headers.get("X-Next-Page", "").strip()
            if not next_page:
                return items
            if not next_page.isdigit():
                raise self.http.error("GET", url, f"bad X-Next-Page header {next_page[:20]!r}")
            url = self.http.url(path, **query, page=int(next_page))
        raise self.http.error("GET", url, "pagination does not end")

    def open_pull_requests(self) -> list[PullRequestInfo]:
        items = self._pages(
            f"{self.project}/merge_requests", "merge request list", state="opened", per_page=100
        )
        return [read(parse_merge_request, item) for item in items]

    def list_comments(self, number: int) -> list[tuple[str, str]]:
        path = f"{self.project}/merge_requests/{number}/notes"
        return [read(parse_note, n) for n in self._pages(path, "note list", per_page=100)]

    def create_comment(self, number: int, body: str) -> str:
        url = self.http.url(f"{self.project}/merge_requests/{number}/notes")
        data, _ = self.http.json("POST", url, {"body": body})
        return read(parse_note, data)[0]

    def edit_comment(self, number: int, comment_id: str, body: str) -> bool:
        note = quote(comment_id, safe="")
        url = self.http.url(f"{self.project}/merge_requests/{number}/notes/{note}")
        return self.http.request("PUT", url, {"body": body}, missing_ok=True) is not None

    def set_status(self, sha: str, state: str, description: str, target_url: str | None) -> None:
        check_state(state)
        payload: dict[str, Any] = {
            "state": STATE_MAP[state],
            "name": STATUS_CONTEXT,
            "description": short_description(description),
        }
        if target_url:
            payload["target_url"] = target_url
        url = self.http.url(f"{self.project}/statuses/{quote(sha, safe='')}")
        try:
            self.http.request("POST", url, payload)
        except ProviderError as e:
            # GitLab refuses to re-post the state a status already has ("Cannot transition
            # status via :enqueue from :pending"): the commit already shows what we want.
            if e.status == 400 and "Cannot transition status" in str(e):
                return
            raise
