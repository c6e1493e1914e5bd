"""The GraphQL surface (Strawberry): thin resolvers over the application's use cases."""
