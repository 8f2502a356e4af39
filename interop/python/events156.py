"""Event classes shared by the interop scripts; the Rust side mirrors them in
crates/bubus/tests/interop_python.rs."""

from typing import Any

from pydantic import BaseModel

from bubus import BaseEvent


class Address(BaseModel):
    street: str
    city: str
    zip: str | None = None


class Customer(BaseModel):
    name: str
    email: str
    address: Address
    vip: bool = False


class LineItem(BaseModel):
    sku: str
    quantity: int
    unit_price: float
    options: dict[str, str] = {}


class OrderPlaced(BaseEvent[str]):
    order_id: str
    customer: Customer
    items: list[LineItem]
    tags: list[str]
    metadata: dict[str, Any]
    note: str | None = None


class ShipmentRequested(BaseEvent[dict[str, int]]):
    order_id: str
    warehouses: list[str]
    weights: dict[str, list[float]]


class AuditLogged(BaseEvent[None]):
    message: str
    level: int = 20


def sample_order(order_id: str = 'ord-1001') -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer=Customer(
            name='Ada Lovelace',
            email='ada@example.com',
            address=Address(street='12 Analytical Way', city='London'),
            vip=True,
        ),
        items=[
            LineItem(sku='ENG-1', quantity=2, unit_price=19.99, options={'colour': 'brass'}),
            LineItem(sku='CARD-7', quantity=100, unit_price=0.1),
        ],
        tags=['priority', 'gift'],
        metadata={
            'unicode': 'héllo ✓ 漢字 🚀',
            'big': 2**62,
            'negative': -7,
            'tiny': 1e-7,
            'huge': 1.5e300,
            'none': None,
            'flags': [True, False],
            'nested': {'deep': {'list': [1, [2, [3, {'x': 'y'}]]]}},
            'empty_list': [],
            'empty_object': {},
        },
        event_timeout=12.5,
    )
