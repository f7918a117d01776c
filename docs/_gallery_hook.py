"""MkDocs hook: publish the study figures of ``figures/`` with the site, under ``figures/``.

The figures live at the repository root (``figures/*.png``, written by ``linsolve reproduce``), outside
``docs_dir``; this hook adds each one to the site's files as ``figures/NAME.png`` so that the gallery
page (``docs/gallery.md``) shows them without a second copy in the repository.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files


def figure_files(root: Path) -> list[Path]:
    """The PNG figures under ``root / "figures"``, sorted by name."""
    return sorted((root / "figures").glob("*.png"))


def on_files(files: Files, config) -> Files:
    """Add ``figures/*.png`` of the repository (the folder holding ``mkdocs.yml``) to the site."""
    root = Path(config["config_file_path"]).resolve().parent
    for png in figure_files(root):
        uri = f"figures/{png.name}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files
