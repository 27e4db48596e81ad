"""Small copies of local images, inlined in the storyboard as `data:` URIs so the page
needs neither the files nor a network to be viewed. Pillow loads only here, and only when
a script names a local image."""

from __future__ import annotations

import base64
import io

MAX_SIDE = 320  # pixels: a thumbnail's longer side (at most; a smaller image is kept as it is)


def data_uri(path: str, max_side: int = MAX_SIDE) -> str | None:
    """A downscaled copy of the image at `path` as a `data:` URI: PNG where the image has
    transparency, else JPEG. None when it cannot be read (the checker says why)."""
    from PIL import Image, ImageOps

    from klingspec.images import MAX_IMAGE_BYTES
    from klingspec.loading import read_bytes

    try:
        data = read_bytes(path, MAX_IMAGE_BYTES)  # a regular file, bounded, before Pillow sees a byte
        if len(data) > MAX_IMAGE_BYTES:
            return None
        with Image.open(io.BytesIO(data)) as opened:
            opened.seek(0)  # an animation: its first frame
            picture = ImageOps.exif_transpose(opened)
            picture.thumbnail((max_side, max_side))
            transparent = picture.mode in ("RGBA", "LA", "PA") or (
                picture.mode == "P" and "transparency" in picture.info
            )
            picture = picture.convert("RGBA" if transparent else "RGB")
            out = io.BytesIO()
            if transparent:
                picture.save(out, "PNG", optimize=True)
                mime = "image/png"
            else:
                picture.save(out, "JPEG", quality=82)
                mime = "image/jpeg"
    except (OSError, ValueError, Image.DecompressionBombError, EOFError):
        return None
    return f"data:{mime};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"
