"""Hostile files as a public leaderboard receives them: files crafted to hang the reader, exhaust its memory or
inject into terminals and spreadsheets must end in one error (or a harmless output), quickly and cheaply."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from adbench_hr.errors import InputError
from adbench_hr.maps import read_map


def test_many_page_tiff_is_refused_without_building_tifffiles_series(tmp_path, monkeypatch):
    # tifffile's series of a file of many distinct pages takes minutes for a few MB (100000 1x1 pages: over
    # 5 minutes); the page-count error must not wait for it.
    path = tmp_path / "pages.tiff"
    with tifffile.TiffWriter(path) as writer:
        for _ in range(50):
            writer.write(np.zeros((1, 1), np.float32), contiguous=False)

    def no_series(self):
        pytest.fail("tif.series was built")

    monkeypatch.setattr(tifffile.TiffFile, "series", property(no_series))
    with pytest.raises(InputError, match="TIFF file has 50 pages; expected a single image$"):
        read_map(path)
    hint = tmp_path / "two.tiff"  # the channels-as-pages hint still comes
    tifffile.imwrite(hint, np.zeros((24, 40, 2), np.float32))
    with pytest.raises(InputError, match=r"saved as H pages of W x C, here 40 x 2\)$"):
        read_map(hint)
