"""GitHub and Gitea: Gitea copies GitHub's REST paths and shapes, so one client serves
both; they differ in auth header, pagination and how a draft is spelled."""

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

GITEA_PAGE = 50
WIP_PREFIXES = ("wip:", "[wip]")


def repo_path(repository: str) -> str:
    owner, sep, name = repository.strip("/").partition("/")
    if not (sep and owner and name) or "/" in name:
        raise ProviderError(f"repository must be 'owner/name', got {repository!r}")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _full_name(repo: Any, what: str) -> str | None:
    return opt_str(as_dict(repo, what).get("full_name"), f"{what}.full_name")


def parse_pull(data: Any, *, gitea: bool = False) -> PullRequestInfo:
    pr = as_dict(data, "pull request")
    number = as_int(pr.get("number"), "pull request number")
    head = as_dict(pr.get("head"), f"PR #{number} head")
    base = as_dict(pr.get("base"), f"PR #{number} base")
    head_repo = head.get("repo")  # null when the fork was deleted
    base_name = _full_name(base.get("repo"), f"PR #{number} base.repo")
    is_fork = head_repo is None or _full_name(head_repo, f"PR #{number} head.repo") != base_name
    draft = opt_bool(pr.get("draft"), f"PR #{number} draft")
    if gitea:
        title = opt_str(pr.get("title"), f"PR #{number} title") or ""
        draft = draft or title.lstrip().lower().startswith(WIP_PREFIXES)
    labels = tuple(
        opt_str(as_dict(label, f"PR #{number} label").get("name"), f"PR #{number} label") or ""
        for label in as_list(pr.get("labels") or [], f"PR #{number} labels")
    )
    return PullRequestInfo(
        number=number,
        head_ref=opt_str(head.get("ref"), f"PR #{number} head.ref"),
        head_sha=opt_str(head.get("sha"), f"PR #{number} head.sha"),
        is_fork=is_fork,
        draft=draft,
        labels=tuple(label for label in labels if label),
    )


def parse_comment(data: Any) -> tuple[str, str]:
    comment = as_dict(data, "comment")
    return as_id(comment.get("id"), "comment id"), opt_str(comment.get("body"), "body") or ""


class GitHubClient(CommentClient):
    """GitHub REST v3 (github.com or Enterprise `https://host/api/v3`)."""

    gitea = False

    def __init__(self, http: Transport, repository: str) -> None:
        super().__init__(http)
        self.repo = repo_path(repository)

    def open_pull_requests(self) -> list[PullRequestInfo]:
        url = self.http.url(f"{self.repo}/pulls", state="open", per_page=100)
        items = self.paginate_links(url, "pull request list")
        return [read(lambda d: parse_pull(d, gitea=self.gitea), item) for item in items]

    def list_comments(self, number: int) -> list[tuple[str, str]]:
        url = self.http.url(f"{self.repo}/issues/{number}/comments", per_page=100)
        return [read(parse_comment, c) for c in self.paginate_links(url, "comment list")]

    def create_comment(self, number: int, body: str) -> str:
        url = self.http.url(f"{self.repo}/issues/{number}/comments")
        data, _ = self.http.json("POST", url, {"body": body})
        return read(parse_comment, data)[0]

    def edit_comment(self, number: int, comment_id: str, body: str) -> bool:
        url = self.http.url(f"{self.repo}/issues/comments/{quote(comment_id, safe='')}")
        return self.http.request("PATCH", url, {"body": body}, missing_ok=True) is not None

    def set_status(self, sha: str, state: str, description: str, target_url: str | None) -> None:
        check_state(state)
        payload: dict[str, Any] = {
            "state": state,
            "description": short_description(description),
            "context": STATUS_CONTEXT,
        }
        if target_url:
            payload["target_url"] = target_url
        self.http.request(
            "POST", self.http.url(f"{self.repo}/statuses/{quote(sha, safe='')}"), payload
        )


class GiteaClient(GitHubClient):
    """Gitea `/api/v1`: page/limit pagination (a short page is the last one), a single
    unpaginated comment listing, and drafts spelled as a WIP title prefix."""

    gitea = True

    def open_pull_requests(self) -> list[PullRequestInfo]:
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            url = self.http.url(f"{self.repo}/pulls", state="open", limit=GITEA_PAGE, page=page)
            data, resp = self.http.json("GET", url)
            batch = as_list(data, "pull request list")
            items.extend(batch)
            # A server whose MAX_RESPONSE_ITEMS is below our limit returns short pages:
            # X-Total-Count (when sent) says whether more remain.
            total = resp.headers.get("X-Total-Count", "")
            more = total.isdigit() and len(items) < int(total)
            if not batch or (len(batch) < GITEA_PAGE and not more):
                return [read(lambda d: parse_pull(d, gitea=True), item) for item in items]
        raise self.http.error("GET", url, "pagination does not end")

    def list_comments(self, number: int) -> list[tuple[str, str]]:
        url = self.http.url(f"{self.repo}/issues/{number}/comments")
        data, _ = self.http.json("GET", url)
        return [read(parse_comment, c) for c in as_list(data, "comment list")]
