"""Django discovers models through this module; each domain keeps its own ``models.py``."""

from saleor_crm_plugin.app.models import SaleorInstance
from saleor_crm_plugin.customers.models import Customer, CustomerChannelStats, Order, OrderLine
from saleor_crm_plugin.events.models import BackfillProgress, InboxEvent
from saleor_crm_plugin.loyalty.models import (
    LedgerEntry,
    LotConsumption,
    LoyaltyAccount,
    LoyaltyProgramOverride,
    LoyaltyProgramSettingsChange,
    PointLot,
    Redemption,
    TierChange,
)
from saleor_crm_plugin.recommendations.models import (
    ChannelRanking,
    ModelArtefact,
    ModelRun,
    PrecomputedRecommendation,
    ProductAssociation,
    ProductAvailability,
    ProductRule,
    StorefrontEvent,
)
from saleor_crm_plugin.rfm.models import CustomerRfm, RfmRun, RfmSegmentHistory, RfmSegmentMap
from saleor_crm_plugin.writeback.models import MetadataWriteback

__all__ = [
    "BackfillProgress",
    "ChannelRanking",
    "Customer",
    "CustomerChannelStats",
    "CustomerRfm",
    "InboxEvent",
    "LedgerEntry",
    "LotConsumption",
    "LoyaltyAccount",
    "LoyaltyProgramOverride",
    "LoyaltyProgramSettingsChange",
    "MetadataWriteback",
    "ModelArtefact",
    "ModelRun",
    "Order",
    "OrderLine",
    "PointLot",
    "PrecomputedRecommendation",
    "ProductAssociation",
    "ProductAvailability",
    "ProductRule",
    "Redemption",
    "RfmRun",
    "RfmSegmentHistory",
    "RfmSegmentMap",
    "SaleorInstance",
    "StorefrontEvent",
    "TierChange",
]
