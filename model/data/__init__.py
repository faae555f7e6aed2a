"""model.data"""
