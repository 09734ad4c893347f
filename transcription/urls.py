from django.urls import path

from . import views

app_name = "transcription"

urlpatterns = [
    path("", views.recorder, name="recorder"),
    path("signup/", views.signup, name="signup"),
    path("sessions/", views.session_list, name="session_list"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session_detail"),
    path("sessions/<uuid:session_id>/delete/", views.session_delete, name="session_delete"),
]
