"""Push notification gateway adapters (APNs/FCM relays), one module per vendor."""
