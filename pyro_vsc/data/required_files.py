"""The files a dataset needs: downloaded where that is allowed, else one error naming them."""


def fetch_missing_files(folder, missing_files, download, fetch, *, dataset, placement, download_hint,
                        download_errors=(Exception,)):
    """Makes sure ``folder`` holds a dataset's files, downloading them with ``fetch`` if asked.

    :param folder: where the files belong (named in the error).
    :param missing_files: callable returning the names of the files ``folder`` lacks.
    :param bool download: call ``fetch`` when files are missing.
    :param fetch: downloads the files (e.g. a torchvision dataset with ``download=True``).
    :param str dataset: the dataset's name, for the error.
    :param str placement: how to put the files there by hand (the error's second line).
    :param str download_hint: the error's last line when no download was asked for.
    :param download_errors: exception types of a failed download: reported in the error (and
        chained to it), not raised.
    :raises FileNotFoundError: naming the missing files and the folder, and what the download did.
    """
    download_error = None
    if download and missing_files():
        try:
            fetch()
        except download_errors as error:
            download_error = error
    missing = missing_files()
    if not missing:
        return
    lines = [f"{dataset} files not found in {folder} (missing: {', '.join(missing)}).", placement]
    if download_error is not None:
        lines.append(f"Downloading them failed: {download_error}")
    elif not download:
        lines.append(download_hint)
    raise FileNotFoundError("\n".join(lines)) from download_error
