"""`curate export ... --push-to-hub REPO_ID`: upload an export and its card as a Hub dataset repo.

Offline (no network, `HF_HUB_OFFLINE=1`, or the Hub unreachable) the push stops with a clear
message that the files are on disk and how to upload them later; the export is never undone.
"""

from __future__ import annotations

from pathlib import Path

from curate.errors import CurateError


class HubUnavailable(CurateError):
    exit_code = 1


def push_to_hub(repo_id: str, files: list[Path], private: bool = False) -> str:
    """Create (or reuse) the dataset repo `repo_id` and upload `files` (a folder uploads whole); its URL."""
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    where = ", ".join(str(f) for f in files)
    later = f"upload them later with `hf upload {repo_id} PATH --repo-type dataset`"
    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        for path in files:
            if path.is_dir():
                api.upload_folder(repo_id=repo_id, folder_path=str(path), repo_type="dataset",
                                  commit_message=f"curate export: {path.name}")
            else:
                api.upload_file(repo_id=repo_id, path_or_fileobj=str(path), path_in_repo=path.name,
                                repo_type="dataset", commit_message=f"curate export: {path.name}")
    except OfflineModeIsEnabled:
        raise HubUnavailable(f"not pushed to {repo_id}: offline mode is on (HF_HUB_OFFLINE); the export is in {where}",
                             hint=later) from None
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = "log in with `hf auth login` or set HF_TOKEN" if status in (401, 403) else later
        raise HubUnavailable(f"the Hub refused the push to {repo_id} ({status}): {str(exc).splitlines()[0][:200]}; "
                             f"the export is in {where}", hint=hint) from None
    except Exception as exc:  # connection errors: the HTTP client's own classes, or OSError
        if not _is_connection_error(exc):
            raise
        raise HubUnavailable(f"not pushed to {repo_id}: the Hugging Face Hub cannot be reached (offline?); "
                             f"the export is in {where}", hint=later) from None
    return f"{huggingface_hub.constants.ENDPOINT}/datasets/{repo_id}"


def _is_connection_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"ConnectionError", "ConnectError", "ConnectTimeout", "ConnectionRefusedError",
                         "NewConnectionError", "MaxRetryError", "ProxyError", "TimeoutError", "ReadTimeout",
                         "gaierror", "LocalEntryNotFoundError"})


def _chain(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__
