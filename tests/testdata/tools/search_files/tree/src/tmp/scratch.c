// TODO scratch
