"""The shipping panel: at a shipping stage the job in hand is completed by SHIP, with the
carrier (one the stage offers), the tracking number (scanned from the carrier's label, or
typed) and the box or batch it travels in."""

from nicegui import ui

from station.flow import Screen
from station.view import StationView


def shipment_panel(view: StationView, screen: Screen) -> None:
    with ui.row().classes("panel w-full items-end gap-4 no-wrap").mark("shipment"):
        with ui.column().classes("gap-1"):
            ui.label("Carrier").classes("label")
            carrier = ui.toggle(list(screen.carriers), value=None).props(
                "size=lg toggle-color=green-8 no-caps"
            )
            carrier.mark("carrier")
        tracking = ui.input("Tracking number (scan the label)", value=screen.tracking)
        tracking.classes("text-xl").style("flex: 3").props("outlined dark").mark("tracking")
        box = ui.input("Box or batch", value=screen.box).classes("text-xl").style("flex: 1")
        box.props("outlined dark").mark("box")

        def ship() -> None:
            view.ship(carrier.value or "", tracking.value or "", box.value or "")

        ui.button("SHIP", on_click=ship).props(
            "color=green-8 unelevated icon=local_shipping"
        ).classes("big-button").mark("ship")
