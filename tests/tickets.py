"""Ticket PDFs as a person or a camera sees them: pages rasterised by PDFium (pypdfium2, a dev
dependency), and the text PDFium reads with where it sits. For tests and benchmarks:

    image = ticket_image(render_tickets([ticket]), dpi=200)  # grayscale uint8, white paper
"""

import cv2
import numpy as np
import pypdfium2

Box = tuple[float, float, float, float]  # left, bottom, right, top in points (y up)


def page_count(pdf: bytes) -> int:
    return len(pypdfium2.PdfDocument(pdf))


def ticket_image(pdf: bytes, page: int = 0, dpi: int = 200) -> np.ndarray:
    """One page as a grayscale image at `dpi`."""
    bitmap = pypdfium2.PdfDocument(pdf)[page].render(scale=dpi / 72, grayscale=True)
    image = bitmap.to_numpy()
    return image if image.ndim == 2 else image[..., 0]


def page_text(pdf: bytes, page: int = 0) -> str:
    return pypdfium2.PdfDocument(pdf)[page].get_textpage().get_text_range()


def job_number(pdf: bytes, page: int = 0) -> str:
    """The big job number a ticket prints: its second line, under the RUSH or job type band."""
    return page_text(pdf, page).splitlines()[1]


def text_box(pdf: bytes, text: str, page: int = 0) -> Box:
    """Where the first occurrence of `text` on the page starts (its first character's box)."""
    textpage = pypdfium2.PdfDocument(pdf)[page].get_textpage()
    found = textpage.search(text, match_case=True).get_next()
    if found is None:
        raise LookupError(f"{text!r} is not on page {page}")
    return textpage.get_charbox(found[0])


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned counter-clockwise by `degrees` on white paper, nothing cut off."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(height * sin + width * cos), int(height * cos + width * sin))
    matrix[0, 2] += size[0] / 2 - width / 2
    matrix[1, 2] += size[1] / 2 - height / 2
    return cv2.warpAffine(image, matrix, size, borderValue=255)
