"""The fields we read from Saleor about customers and orders, shared by the manifest's
subscriptions and by backfill so both produce the same snapshots through the same parser."""

CUSTOMER_FRAGMENT = """
fragment CrmCustomer on User {
  id
  email
  firstName
  lastName
  isActive
  isConfirmed
  dateJoined
  updatedAt
  lastLogin
  languageCode
  note
  externalReference
  metadata { key value }
  defaultBillingAddress { city postalCode country { code } }
  defaultShippingAddress { city postalCode country { code } }
}
"""

ORDER_FRAGMENT = """
fragment CrmOrder on Order {
  id
  number
  created
  updatedAt
  status
  origin
  original
  userEmail
  user { id email firstName lastName }
  channel { id slug currencyCode }
  isPaid
  paymentStatus
  chargeStatus
  authorizeStatus
  total { gross { amount currency } net { amount currency } tax { amount currency } }
  subtotal { gross { amount currency } }
  shippingPrice { gross { amount currency } }
  totalCharged { amount currency }
  totalRefunded { amount currency }
  totalGrantedRefund { amount currency }
  totalBalance { amount currency }
  voucherCode
  customerNote
  languageCodeEnum
  metadata { key value }
  lines {
    id
    productName
    variantName
    productSku
    productVariantId
    variant {
      id
      sku
      product {
        id name slug category { id slug } productType { id slug }
        attributes { attribute { slug } values { slug } }
      }
    }
    quantity
    quantityFulfilled
    unitPrice { gross { amount currency } net { amount currency } }
    totalPrice { gross { amount currency } }
  }
  transactions {
    id
    name
    pspReference
    chargedAmount { amount currency }
    refundedAmount { amount currency }
    events { id type pspReference amount { amount currency } createdAt }
  }
  grantedRefunds {
    id
    amount { amount currency }
    reason
    status
    lines { id quantity orderLine { id } }
  }
  fulfillments {
    id
    fulfillmentOrder
    status
    created
    trackingNumber
    warehouse { id slug }
    lines { id quantity orderLine { id } }
  }
}
"""
