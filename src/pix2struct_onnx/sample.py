"""A document page drawn by the project: the sample for conversion checks and benchmarks."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SAMPLE_QUESTION = "What is the invoice number?"


def draw_sample_document(font_path: str | Path, width: int = 850, height: int = 1100) -> Image.Image:
    """A letter-size invoice at 100 dpi: heading, addresses, a table of items and a total."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    big = ImageFont.truetype(str(font_path), 40)
    body = ImageFont.truetype(str(font_path), 20)
    draw.text((60, 60), "INVOICE", font=big, fill="black")
    draw.text((560, 70), "Invoice number: 4821", font=body, fill="black")
    draw.text((560, 100), "Date: March 3, 2021", font=body, fill="black")
    for i, line in enumerate(["Acme Research Ltd.", "12 Harbour Road", "Bristol BS1 4QA"]):
        draw.text((60, 150 + 28 * i), line, font=body, fill="black")
    top = 300
    draw.rectangle((60, top, width - 60, top + 40), fill=(225, 225, 225), outline="black")
    for x, title in [(70, "Item"), (450, "Qty"), (560, "Price"), (680, "Amount")]:
        draw.text((x, top + 8), title, font=body, fill="black")
    rows = [("Printer paper, A4", 10, 4.50), ("Toner cartridge", 2, 89.00),
            ("Archive boxes", 5, 7.20), ("Delivery", 1, 15.00)]
    for i, (item, qty, price) in enumerate(rows):
        y = top + 50 + 36 * i
        for x, text in [(70, item), (450, str(qty)), (560, f"{price:.2f}"), (680, f"{qty * price:.2f}")]:
            draw.text((x, y), text, font=body, fill="black")
        draw.line((60, y + 32, width - 60, y + 32), fill=(180, 180, 180))
    total = sum(q * p for _, q, p in rows)
    draw.text((560, top + 60 + 36 * len(rows)), f"Total due: {total:.2f} GBP", font=body, fill="black")
    draw.text((60, height - 100), "Payment terms: 30 days. Thank you for your business.", font=body, fill="black")
    return page
